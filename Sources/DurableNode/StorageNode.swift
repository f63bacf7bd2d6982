import DurableObjects
import DurableProtocol
import DurableStorage
import DurableTracing
import DurableWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// How a storage node runs.
public struct NodeConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The port to listen on (0 picks a free one).
    public var port: Int
    /// The folder of the node's RocksDB database.
    public var dataDirectory: String
    /// The node's name in the cluster.
    public var nodeID: String
    /// How objects are run.
    public var runtime: RuntimeConfiguration
    /// The largest frame accepted.
    public var maximumFrameSize: Int
    /// How long running calls may take to finish on shutdown.
    public var shutdownGracePeriod: Duration
    /// The cluster secret every RPC connection must prove (the gateway's, and other cluster members');
    /// `nil` serves everyone.
    public var clusterSecret: RPCKey?
    /// The primary this node is the standby of (`durable node --standby-for`): it applies that node's write groups
    /// (`Node/ApplyGroups`); `nil` for a node that is no standby.
    public var standbyFor: String?
    /// With ``standbyFor``: this node was a primary that was replaced; its data is replaced by the new primary's
    /// next checkpoint.
    public var standbyRejoining = false
    /// The certificate the node's port serves TLS with; clients must present certificates signed by the
    /// cluster's CA (mutual TLS). `nil` serves plaintext.
    public var tls: RPCServerTLS?
    /// How the node connects to other cluster members over TLS (pulling a slot, shipping to its standby): its
    /// certificate and the cluster's CA. `nil` for plaintext.
    public var peerTLS: RPCClientTLS?

    /// Creates a configuration.
    public init(
        host: String = "127.0.0.1", port: Int, dataDirectory: String, nodeID: String,
        runtime: RuntimeConfiguration = RuntimeConfiguration(), maximumFrameSize: Int = defaultMaximumFrameSize,
        shutdownGracePeriod: Duration = .seconds(10), clusterSecret: RPCKey? = nil, standbyFor: String? = nil,
        standbyRejoining: Bool = false
    ) {
        self.standbyFor = standbyFor
        self.standbyRejoining = standbyRejoining
        self.clusterSecret = clusterSecret
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.nodeID = nodeID
        self.runtime = runtime
        self.maximumFrameSize = maximumFrameSize
        self.shutdownGracePeriod = shutdownGracePeriod
    }
}

/// A storage node: runs the app's objects on its own RocksDB database and serves them over the RPC protocol
/// (`durable.v1.Objects` and `durable.v1.Node`).
///
/// The gateway's registry defines the node's namespaces and bindings (`Node/DefineNamespaces`); the node keeps
/// them in its database, so they survive restarts. A node that was never given any serves one namespace per class
/// its default bindings name, with the class name as namespace id and an id key kept in its database.
public final class StorageNode: Service, Sendable {
    /// The configuration.
    public let configuration: NodeConfiguration
    /// The object runtime.
    public let runtime: ObjectRuntime
    /// The identity of the node's database, made when the database was created: the gateway records it the first
    /// time the node registers and refuses the node id with any other database.
    public let databaseIdentity: String
    private let database: Database
    private let server: RPCServer
    private let service: ObjectService
    private let logger: Logger
    private let onStarted: @Sendable (Int) async -> Void

    /// Opens the node's database and prepares its namespaces; nothing listens until ``start()``.
    ///
    /// - Throws: a storage error naming the folder when the database cannot be opened (for example because
    ///   another node holds it).
    public init(
        configuration: NodeConfiguration, classes: [DurableObjectClass], bindings: [String: String],
        logger: Logger = Logger(label: "durable.node"), onStarted: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws {
        self.configuration = configuration
        self.onStarted = onStarted
        var logger = logger
        logger[metadataKey: "node"] = "\(configuration.nodeID)"
        self.logger = logger
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        database = try Database(path: configuration.dataDirectory)
        runtime = ObjectRuntime(database: database, configuration: configuration.runtime, logger: logger)
        let meta = try database.defaultColumnFamily
        let identity = try DatabaseIdentity.loadOrCreate(
            in: database, family: meta, key: NodeMetadata.databaseIdentityKey)
        databaseIdentity = identity.identity
        if identity.isNew {
            logger.info("new node database", metadata: ["database": "\(databaseIdentity)"])
        }
        for objectClass in classes { runtime.register(objectClass) }
        var served = try NodeMetadata.definitions(database: database, family: meta)
        if served == nil {
            // Not configured by a registry yet: one namespace per class of the default bindings.
            var definitions: [NamespaceDefinition] = []
            for className in Set(bindings.values).sorted() {
                let key = try NodeMetadata.namespaceKey(className, database: database, family: meta)
                definitions.append(NamespaceDefinition(id: className, className: className, key: key))
            }
            served = (definitions, bindings)
        }
        for definition in served!.namespaces { try runtime.defineNamespace(definition) }
        try runtime.setEnvironment(bindings: served!.bindings)
        let opened = database
        let standby = try configuration.standbyFor.map {
            try StandbyReplica(
                database: opened, primary: $0, databaseIdentity: identity.identity,
                rejoining: configuration.standbyRejoining)
        }
        if standby == nil {
            runtime.loadSlots(try NodeMetadata.slotEpochs(database: database, family: meta))
        } else {
            // A standby's slot records are its primary's: it serves no slot and fires no alarm until it takes over.
            runtime.placement.setSuspended(true)
        }
        service = ObjectService(
            nodeID: configuration.nodeID, runtime: runtime, bindings: served!.bindings, database: database,
            meta: meta, clusterSecret: configuration.clusterSecret, peerTLS: configuration.peerTLS,
            standby: standby,
            logger: logger)
        server = RPCServer(
            host: configuration.host, port: configuration.port, handler: service,
            maximumFrameSize: configuration.maximumFrameSize,
            access: configuration.clusterSecret.map { RPCAccessControl(keys: [$0], roles: { _ in [.cluster] }) },
            tls: configuration.tls, logger: logger)
        service.server.withLock { $0 = server }
    }

    /// The node's RPC methods, for a gateway in the same process to call without a socket.
    /// They are refused once the node shuts down, as its port's calls are.
    public var rpcHandler: any RPCHandler { server.inProcessHandler }

    /// Sends the calls that this node's objects make to other objects through `transport` (the gateway, in a
    /// cluster), so that each call reaches the one node that owns its target instead of starting a second
    /// instance here.
    public func routeObjectCalls(through transport: any ObjectTransport) throws {
        service.objectTransport.withLock { $0 = transport }
        try runtime.setEnvironment(bindings: service.bindings.withLock { $0 }, transport: transport)
    }

    /// The identity of the registry the node joined, if it joined one.
    public var joinedRegistryIdentity: String? {
        get throws {
            try database.get(NodeMetadata.registryIdentityKey, in: database.defaultColumnFamily).map {
                String(decoding: $0, as: UTF8.self)
            }
        }
    }

    /// Checks that the registry of the gateway the node joins is the one it joined before, and records it the first
    /// time: a gateway whose database was wiped (or another cluster's) would give every namespace new keys.
    ///
    /// - Throws: `FAILED_PRECONDITION` naming both registry identities when they differ; nothing is recorded then.
    public func checkRegistry(_ registryIdentity: String) throws {
        guard !registryIdentity.isEmpty else { return }
        let meta = try database.defaultColumnFamily
        if let joined = try database.get(NodeMetadata.registryIdentityKey, in: meta) {
            let recorded = String(decoding: joined, as: UTF8.self)
            guard recorded == registryIdentity else {
                throw DurableObjectError(
                    .failedPrecondition,
                    "The gateway's registry is \(registryIdentity), but this node joined registry \(recorded): it is "
                        + "another cluster's gateway, or one whose database was replaced. Its namespaces would not "
                        + "match this node's data.")
            }
            return
        }
        var batch = WriteBatch()
        batch.put(Array(registryIdentity.utf8), forKey: NodeMetadata.registryIdentityKey, in: meta)
        try database.write(batch, sync: true)
        logger.info("joined a registry", metadata: ["registry": "\(registryIdentity)"])
    }

    /// Sends what this node's objects write on their sockets to `hub` (the gateway that holds the connections).
    public func sendWebSocketFrames(through hub: any WebSocketHub) {
        runtime.setWebSocketHub(hub)
    }

    /// Starts serving; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let port = try await server.start()
        logger.info(
            "storage node serving",
            metadata: [
                "address": "\(configuration.host):\(port)", "data": "\(configuration.dataDirectory)",
                "namespaces": "\(runtime.classNames.joined(separator: ","))",
            ])
        return port
    }

    // MARK: Replication

    /// Makes this node a primary that replicates its writes to a standby once one attaches
    /// (`Node/AttachStandby`), or at once to the standby attached before.
    ///
    /// - Parameters:
    ///   - term: the node's term in the control plane.
    ///   - onFenced: called once if the node learns that its standby took over (it then refuses every call).
    public func enableReplication(
        term: UInt64, policy: ReplicationPolicy, control: any ReplicationControl,
        standbyTimeout: Duration = .seconds(1),
        onFenced: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        let primary = try PrimaryReplication(
            nodeID: configuration.nodeID, database: database, term: term, policy: policy, control: control,
            credentials: configuration.clusterSecret, tls: configuration.peerTLS, standbyTimeout: standbyTimeout,
            logger: logger,
            onFenced: { [weak self] reason in
                self?.refuseEverything("Node \(self?.configuration.nodeID ?? "") was replaced: \(reason)")
                onFenced(reason)
            })
        service.primary.withLock { $0 = primary }
    }

    /// The primary's replication, once enabled.
    public var replication: PrimaryReplication? { service.primary.withLock { $0 } }

    /// Where this standby is: the primary it follows, its term and last group (`nil` for a node that is no
    /// standby).
    public var standbyPosition: Durable_V1_StandbyPosition? { service.standby?.current }

    /// The standby takes over at `term`: it refuses its former primary's groups from now on and serves the slots it
    /// is given (``takeSlots(_:)``).
    public func promote(toTerm term: UInt64) async throws {
        guard let standby = service.standby else {
            throw RPCError(.failedPrecondition, "Node \(configuration.nodeID) is not a standby.")
        }
        try await standby.promote(toTerm: term)
        service.servingRefusal.withLock { $0 = nil }
        runtime.placement.setSuspended(false)
        logger.notice("took over from the primary", metadata: ["primary": "\(standby.primary)", "term": "\(term)"])
    }

    /// Serves `slots` at their epochs (a standby that took over assigns itself its former primary's slots).
    public func takeSlots(_ slots: [(slot: UInt16, epoch: UInt64)]) async throws {
        try await service.assign(slots.map { ($0.slot, $0.epoch, false) })
    }

    /// Closes with 1012 the WebSockets the former primary had for `slots` (their rows came with the copy): once
    /// the node has joined the gateways, which hold the clients' side.
    public func closeSockets(ofSlotsTakenOver slots: [UInt16]) async {
        await runtime.closeSockets(ofSlotsTakenOver: slots)
    }

    /// Refuses every object call, and fires no alarm, from now on, with `reason`.
    public func refuseEverything(_ reason: String) {
        service.servingRefusal.withLock { $0 = reason }
        runtime.placement.setSuspended(true)
        replication?.fence(reason)
    }

    /// A check run before and after every object call: a reason to refuse it (the node's lease is not confirmed),
    /// or `nil`.
    public func setServingCheck(_ check: (@Sendable () -> String?)?) {
        service.servingCheck.withLock { $0 = check }
    }

    /// Waits until the node has shut down.
    public func waitUntilStopped() async {
        await server.waitUntilClosed()
    }

    /// Runs the node as a service: starts it (unless ``start()`` already did), serves until graceful shutdown is requested (SIGTERM in a
    /// `ServiceGroup`) or the task is cancelled, then shuts down gracefully.
    public func run() async throws {
        let port: Int
        if let started = server.port { port = started } else { port = try await start() }
        await onStarted(port)
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Shuts down gracefully: tells clients to go away, lets running calls finish (within the grace period),
    /// makes every write durable, evicts every object and closes the database.
    public func shutdown() async {
        logger.info("storage node shutting down")
        await server.shutdown(gracePeriod: configuration.shutdownGracePeriod)
        await runtime.shutdown()
        database.close()
        logger.info("storage node stopped")
    }
}

/// What a node keeps about itself in its database's default column family.
enum NodeMetadata {
    /// The database's identity (``DatabaseIdentity``).
    static let databaseIdentityKey = Array("\(NodeKeyspace.node)database-identity".utf8)
    /// The identity of the registry the node joined.
    static let registryIdentityKey = Array("\(NodeKeyspace.node)registry-identity".utf8)

    static func namespaceKey(_ className: String, database: Database, family: ColumnFamily) throws -> NamespaceKey {
        let key = Array("\(NodeKeyspace.node)namespace-secret/\(className)".utf8)
        if let stored = try database.get(key, in: family) { return NamespaceKey(secret: stored) }
        let fresh = NamespaceKey.random()
        var batch = WriteBatch()
        batch.put(fresh.secret, forKey: key, in: family)
        try database.write(batch, sync: true)
        return fresh
    }

    static let definitionsKey = Array("\(NodeKeyspace.node)definitions".utf8)

    /// What a registry last told the node to serve: namespaces and binding → namespace id.
    struct Definitions: Codable {
        struct Namespace: Codable {
            var id: String
            var className: String
            var secret: [UInt8]
        }
        var namespaces: [Namespace]
        var bindings: [String: String]
        /// The ids of the namespaces a registry defined (the others the node serves on its own); absent in
        /// databases written before it was kept.
        var registryNamespaces: [String]?
    }

    static func definitions(database: Database, family: ColumnFamily) throws
        -> (namespaces: [NamespaceDefinition], bindings: [String: String])?
    {
        guard let stored = try storedDefinitions(database: database, family: family) else { return nil }
        return (
            stored.namespaces.map {
                NamespaceDefinition(id: $0.id, className: $0.className, key: NamespaceKey(secret: $0.secret))
            }, stored.bindings
        )
    }

    /// The ids of the namespaces a registry defined here, as last saved.
    static func registryNamespaces(database: Database, family: ColumnFamily) throws -> Set<String> {
        Set(try storedDefinitions(database: database, family: family)?.registryNamespaces ?? [])
    }

    private static func storedDefinitions(database: Database, family: ColumnFamily) throws -> Definitions? {
        guard let bytes = try database.get(definitionsKey, in: family) else { return nil }
        return try JSONDecoder().decode(Definitions.self, from: Data(bytes))
    }

    static func saveDefinitions(
        _ namespaces: [NamespaceDefinition], bindings: [String: String], registryNamespaces: Set<String>,
        database: Database, family: ColumnFamily
    ) throws {
        let stored = Definitions(
            namespaces: namespaces.map { .init(id: $0.id, className: $0.className, secret: $0.key.secret) },
            bindings: bindings, registryNamespaces: registryNamespaces.sorted())
        var batch = WriteBatch()
        batch.put(Array(try JSONEncoder().encode(stored)), forKey: definitionsKey, in: family)
        try database.write(batch, sync: true)
    }

    static let slotPrefix = Array("\(NodeKeyspace.node)slot-epoch/".utf8)

    /// The slots' epochs as last assigned: 8 bytes of epoch, then one byte `1` when the slot is retired (older
    /// records have no ninth byte).
    static func slotEpochs(database: Database, family: ColumnFamily) throws -> [(
        slot: UInt16, epoch: UInt64, retired: Bool
    )] {
        try database.scan(in: family, ScanOptions(prefix: slotPrefix)).compactMap { entry in
            guard entry.key.count == slotPrefix.count + 2, entry.value.count == 8 || entry.value.count == 9 else {
                return nil
            }
            let slot = UInt16(entry.key[slotPrefix.count]) << 8 | UInt16(entry.key[slotPrefix.count + 1])
            let epoch = entry.value.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return (slot, epoch, entry.value.count == 9 && entry.value[8] == 1)
        }
    }

    static func saveSlotEpochs(
        _ assignments: [(slot: UInt16, epoch: UInt64, retired: Bool)], database: Database, family: ColumnFamily
    ) throws {
        var batch = WriteBatch()
        for (slot, epoch, retired) in assignments {
            let key = slotPrefix + [UInt8(slot >> 8), UInt8(slot & 0xFF)]
            let value = (0..<8).reversed().map { UInt8(truncatingIfNeeded: epoch >> (8 * UInt64($0))) }
            batch.put(value + (retired ? [1] : []), forKey: key, in: family)
        }
        try database.write(batch, sync: true)
    }
}

/// The node's RPC methods.
final class ObjectService: RPCHandler {
    let nodeID: String
    let runtime: ObjectRuntime
    /// Binding name → namespace id.
    let bindings: Mutex<[String: String]>
    let database: Database
    let meta: ColumnFamily
    let logger: Logger
    let server = Mutex<RPCServer?>(nil)
    /// Where objects' calls to other objects go (`nil`: this node's own runtime).
    let objectTransport = Mutex<(any ObjectTransport)?>(nil)
    /// The key this node proves to other nodes (pulling a slot), the cluster secret.
    let clusterSecret: RPCKey?
    /// How this node reaches other nodes over TLS; `nil` for plaintext.
    let peerTLS: RPCClientTLS?
    /// This node's copy of its primary's writes, when it is a standby.
    let standby: StandbyReplica?
    /// The primary's replication to its standby, once enabled.
    let primary = Mutex<PrimaryReplication?>(nil)
    /// Why every object call is refused (a standby, or a replaced primary); `nil` while serving.
    let servingRefusal = Mutex<String?>(nil)
    /// Run before and after each object call: a reason to refuse it.
    let servingCheck = Mutex<(@Sendable () -> String?)?>(nil)

    private let invocations = Atomic<UInt64>(0)
    private let failures = Atomic<UInt64>(0)
    private let overloads = Atomic<UInt64>(0)

    init(
        nodeID: String, runtime: ObjectRuntime, bindings: [String: String], database: Database, meta: ColumnFamily,
        clusterSecret: RPCKey?, peerTLS: RPCClientTLS? = nil, standby: StandbyReplica? = nil, logger: Logger
    ) {
        self.clusterSecret = clusterSecret
        self.peerTLS = peerTLS
        self.standby = standby
        if let standby {
            servingRefusal.withLock {
                $0 = "Node \(nodeID) is the standby of '\(standby.primary)': it serves no object until it takes over."
            }
        }
        self.nodeID = nodeID
        self.runtime = runtime
        self.bindings = Mutex(bindings)
        self.database = database
        self.meta = meta
        self.logger = logger
    }

    func handle(_ call: IncomingCall) async throws -> [UInt8] {
        switch call.method {
        case Methods.invoke:
            if CallTracing.isEnabled { return try await tracedInvoke(call) }
            return try await invoke(Durable_V1_InvokeRequest(serializedBytes: call.payload), deadline: call.deadline)
        case Methods.resolveBinding:
            return try resolve(Durable_V1_ResolveBindingRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.webSocketEvent:
            return try await webSocketEvent(Durable_V1_WebSocketEventRequest(serializedBytes: call.payload))
                .serializedBytes()
        case Methods.health:
            return try Durable_V1_HealthResponse.with {
                $0.nodeID = nodeID
                $0.serving = true
            }.serializedBytes()
        case Methods.stats:
            return try stats().serializedBytes()
        case Methods.assignSlots:
            let request = try Durable_V1_AssignSlotsRequest(serializedBytes: call.payload)
            try await assign(
                request.assignments.map { (slot: UInt16($0.slot % 4096), epoch: $0.epoch, retired: $0.retired) })
            return try Durable_V1_AssignSlotsResponse().serializedBytes()
        case Methods.defineNamespaces:
            try define(Durable_V1_DefineNamespacesRequest(serializedBytes: call.payload))
            return try Durable_V1_DefineNamespacesResponse().serializedBytes()
        case Methods.nodeTail:
            return try await NodeTail.serve(call, runtime: runtime, nodeID: nodeID, logger: logger)
        case Methods.nodeExportSlot:
            return try await exportSlot(call)
        case Methods.nodePullSlot:
            return try await pullSlot(Durable_V1_PullSlotRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.nodeApplyGroups:
            return try await standbyReplica().apply(Durable_V1_ApplyGroupsRequest(serializedBytes: call.payload))
                .serializedBytes()
        case Methods.nodeStandbyStatus:
            return try standbyReplica().current.serializedBytes()
        case Methods.nodeAttachStandby:
            let request = try Durable_V1_AttachStandbyRequest(serializedBytes: call.payload)
            guard let primary = primary.withLock({ $0 }) else {
                throw RPCError(
                    .failedPrecondition,
                    "Node \(nodeID) does not replicate: it takes a standby when started with etcd or --replication.")
            }
            guard request.standbyNodeID != nodeID else {
                throw RPCError(.invalidArgument, "Node \(nodeID) cannot be its own standby.")
            }
            guard !request.standbyNodeID.isEmpty, request.address.contains(":") else {
                throw RPCError(.invalidArgument, "A standby attaches with its node id and a host:port address.")
            }
            try primary.attach(.init(nodeID: request.standbyNodeID, address: request.address))
            return try Durable_V1_AttachStandbyResponse.with { $0.term = primary.status.term }.serializedBytes()
        case Methods.nodeDeleteSlot:
            try await deleteSlot(Durable_V1_DeleteSlotRequest(serializedBytes: call.payload))
            return try Durable_V1_DeleteSlotResponse().serializedBytes()
        case Methods.dropNamespaces:
            try drop(Durable_V1_DropNamespacesRequest(serializedBytes: call.payload))
            return try Durable_V1_DropNamespacesResponse().serializedBytes()
        case let method where Self.inspectionMethods.contains(method):
            return try await inspect(call)
        default:
            throw RPCError(.unimplemented, "Unknown method '\(call.method)'.")
        }
    }

    func invoke(_ message: Durable_V1_InvokeRequest, deadline: ContinuousClock.Instant?) async throws -> [UInt8] {
        invocations.add(1, ordering: .relaxed)
        do {
            try checkServing()
            guard let definition = runtime.namespaceDefinition(message.namespaceID) else {
                throw RPCError(
                    .notFound, "No Durable Object namespace '\(message.namespaceID)' is served by node \(nodeID).")
            }
            let name = message.objectName.isEmpty ? nil : message.objectName
            // A caller that cannot compute ids (a thin client in another language) may send only the name.
            let id =
                message.objectID.isEmpty && name != nil
                ? definition.key.id(forName: name!)
                : try definition.key.id(bytes: Array(message.objectID), name: name)
            let request = try Request(wire: message.request)
            let response = try await runtime.invoke(
                namespaceID: message.namespaceID, id: id, request: request,
                epoch: message.placementEpoch,
                deadline: deadline)
            // A node that lost its lease while the call ran may have been replaced: what it read may be old.
            try checkServing()
            return try Durable_V1_InvokeResponse.with { $0.response = response.wire }.serializedBytes()
        } catch {
            let status = RPCError(serving: error)
            if status.overloaded { overloads.add(1, ordering: .relaxed) } else { failures.add(1, ordering: .relaxed) }
            throw status
        }
    }

    /// Throws `UNAVAILABLE` (retryable) while this node must serve no object.
    private func checkServing() throws {
        if let reason = servingRefusal.withLock({ $0 }) ?? servingCheck.withLock({ $0 })?() {
            throw RPCError(.unavailable, reason, retryable: true)
        }
    }

    /// Hands a socket event from the gateway to the object that accepted the socket.
    private func webSocketEvent(_ message: Durable_V1_WebSocketEventRequest) async throws
        -> Durable_V1_WebSocketEventResponse
    {
        do {
            try checkServing()
            guard let definition = runtime.namespaceDefinition(message.namespaceID) else {
                throw RPCError(
                    .notFound, "No Durable Object namespace '\(message.namespaceID)' is served by node \(nodeID).")
            }
            let id = try definition.key.id(bytes: Array(message.objectID), name: nil)
            let known = try await runtime.deliverWebSocketEvent(
                namespaceID: message.namespaceID, id: id, socketID: message.socketID,
                event: WebSocketEvent(wire: message), epoch: message.placementEpoch)
            return .with { $0.known = known }
        } catch {
            throw RPCError(serving: error)
        }
    }

    /// The newest registry revision this node applied (0: none numbered yet).
    private let appliedRegistryRevision = Mutex<UInt64>(0)

    /// Serves the registry's namespaces and bindings, unless they are older than those applied (several gateways
    /// tell a node of each publish, in no particular order); remembers them across restarts.
    private func define(_ request: Durable_V1_DefineNamespacesRequest) throws {
        try appliedRegistryRevision.withLock { applied in
            guard request.registryRevision == 0 || request.registryRevision >= applied else {
                logger.debug(
                    "older namespace definitions ignored",
                    metadata: ["revision": "\(request.registryRevision)", "applied": "\(applied)"])
                return
            }
            try apply(request)
            applied = max(applied, request.registryRevision)
        }
    }

    private func apply(_ request: Durable_V1_DefineNamespacesRequest) throws {
        let definitions = try request.namespaces.map { namespace -> NamespaceDefinition in
            guard !namespace.idKey.isEmpty else {
                throw RPCError(.invalidArgument, "Namespace '\(namespace.id)' has no id key.")
            }
            return NamespaceDefinition(
                id: namespace.id, className: namespace.className, key: NamespaceKey(secret: Array(namespace.idKey)))
        }
        let compiled = Set(runtime.classNames)
        for definition in definitions where !compiled.contains(definition.className) {
            throw RPCError(
                .failedPrecondition,
                "Node \(nodeID) cannot serve namespace '\(definition.id)': class '\(definition.className)' is not compiled into its app."
            )
        }
        var newBindings: [String: String] = [:]
        for binding in request.bindings { newBindings[binding.name] = binding.namespaceID }
        let known = Set(definitions.map(\.id))
        let previouslyDefined = try NodeMetadata.registryNamespaces(database: database, family: meta)
        // A complete list retires what the registry no longer has: a class deleted while this node was down.
        let retired = request.complete ? previouslyDefined.subtracting(known) : []
        for (name, namespaceID) in newBindings
        where !known.contains(namespaceID)
            && (retired.contains(namespaceID) || runtime.namespaceDefinition(namespaceID) == nil)
        {
            throw RPCError(
                .invalidArgument, "Binding '\(name)' names namespace '\(namespaceID)', which is not defined.")
        }
        // The data goes before the record of the namespace: a crash in between leaves it listed, and the next
        // complete definition drops it again.
        for namespaceID in retired.sorted() {
            try runtime.dropNamespace(namespaceID)
            logger.notice(
                "namespace dropped: the registry no longer has it (its class was deleted while this node was away)",
                metadata: ["namespace": "\(namespaceID)"])
        }
        let kept = runtime.namespaceIDs.compactMap { runtime.namespaceDefinition($0) }.filter {
            !known.contains($0.id) && !retired.contains($0.id)
        }
        try NodeMetadata.saveDefinitions(
            kept + definitions, bindings: newBindings,
            registryNamespaces: previouslyDefined.subtracting(retired).union(known),
            database: database, family: meta)
        for definition in definitions { try runtime.defineNamespace(definition) }
        try runtime.setEnvironment(bindings: newBindings, transport: objectTransport.withLock { $0 })
        bindings.withLock { $0 = newBindings }
        logger.info(
            "namespaces defined", metadata: ["namespaces": "\(definitions.map(\.id))", "bindings": "\(newBindings)"])
        if !request.gatewaySessions.isEmpty {
            closeSockets(ofEndedSessions: Set(request.gatewaySessions))
        }
    }

    /// The sweep of sockets whose gateway session ended (one at a time; a newer sweep replaces a running one).
    private let socketSweep = Mutex<Task<Void, Never>?>(nil)

    private func closeSockets(ofEndedSessions live: Set<String>) {
        let runtime = self.runtime
        let logger = self.logger
        socketSweep.withLock { sweep in
            let previous = sweep
            sweep = Task {
                await previous?.value
                do {
                    let closed = try await runtime.closeSockets(ofEndedSessions: live)
                    if closed > 0 {
                        logger.notice(
                            "closed the WebSockets of ended gateway sessions",
                            metadata: ["sockets": "\(closed)", "live-sessions": "\(live.sorted())"])
                    }
                } catch {
                    logger.error("could not sweep the WebSockets of ended gateway sessions: \(error)")
                }
            }
        }
    }

    /// Deletes namespaces and their data.
    private func drop(_ request: Durable_V1_DropNamespacesRequest) throws {
        let dropped = Set(request.namespaceIds)
        let remaining = runtime.namespaceIDs.filter { !dropped.contains($0) }.compactMap {
            runtime.namespaceDefinition($0)
        }
        let remainingBindings = bindings.withLock { $0.filter { !dropped.contains($0.value) } }
        let registryNamespaces = try NodeMetadata.registryNamespaces(database: database, family: meta)
        try NodeMetadata.saveDefinitions(
            remaining, bindings: remainingBindings, registryNamespaces: registryNamespaces.subtracting(dropped),
            database: database, family: meta)
        for id in request.namespaceIds { try runtime.dropNamespace(id) }
        try runtime.setEnvironment(bindings: remainingBindings, transport: objectTransport.withLock { $0 })
        bindings.withLock { $0 = remainingBindings }
        logger.info("namespaces dropped", metadata: ["namespaces": "\(request.namespaceIds)"])
    }

    private func resolve(_ request: Durable_V1_ResolveBindingRequest) throws -> Durable_V1_ResolveBindingResponse {
        let bindings = self.bindings.withLock { $0 }
        guard let namespaceID = bindings[request.binding], let definition = runtime.namespaceDefinition(namespaceID)
        else {
            let known = bindings.keys.sorted().joined(separator: ", ")
            throw RPCError(.notFound, "No Durable Object binding named '\(request.binding)' (bindings: \(known)).")
        }
        return Durable_V1_ResolveBindingResponse.with {
            $0.namespaceID = definition.id
            $0.className = definition.className
            $0.idKey = Data(definition.key.secret)
        }
    }

    private func stats() -> Durable_V1_StatsResponse {
        let commit = runtime.committer.statistics
        return Durable_V1_StatsResponse.with {
            $0.nodeID = nodeID
            $0.activeObjects = UInt64(runtime.activeCount)
            $0.invocations = invocations.load(ordering: .relaxed)
            $0.failedInvocations = failures.load(ordering: .relaxed)
            $0.overloadedRejections = overloads.load(ordering: .relaxed)
            $0.groupCommitBatches = UInt64(commit.batches)
            $0.groupCommitSyncs = UInt64(commit.groups)
            $0.openConnections = UInt64(server.withLock { $0 }?.connectionCount ?? 0)
            $0.storedBytes = database.estimatedDataSize()
        }
    }
}
