import CoreMetrics
import DurableClient
import DurableObjects
import DurableStorage
import DurableWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// How a gateway runs.
public struct GatewayConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The RPC port (0 picks a free one).
    public var rpcPort: Int
    /// The folder of the gateway's own database (registry and placement).
    public var dataDirectory: String
    /// The environment whose bindings `ResolveBinding` answers with (`nil`: the top level).
    public var environment: String?
    /// The keys RPC connections must prove (nodes the cluster secret, operators an admin token, clients an API
    /// token), and the cluster secret the gateway proves to its nodes; `nil` serves everyone.
    public var keys: ClusterKeys?
    /// Where the gateway reports its metrics (forwarded calls, open WebSockets); by default the process's
    /// bootstrapped swift-metrics factory.
    public var metricsFactory: any MetricsFactory
    /// How long a call the worker (or an object, through the gateway) makes to an object may take; past it the call
    /// fails with `DEADLINE_EXCEEDED`, which the HTTP bridge answers `504`.
    public var objectCallTimeout: Duration

    /// Creates a configuration.
    public init(
        host: String = "127.0.0.1", rpcPort: Int, dataDirectory: String, environment: String? = nil,
        keys: ClusterKeys? = nil, metricsFactory: any MetricsFactory = MetricsSystem.factory,
        objectCallTimeout: Duration = .seconds(60)
    ) {
        self.metricsFactory = metricsFactory
        self.objectCallTimeout = objectCallTimeout
        self.host = host
        self.rpcPort = rpcPort
        self.dataDirectory = dataDirectory
        self.environment = environment
        self.keys = keys
    }
}

/// The front door of a cluster: owns the binding registry and the placement table, and routes every object call
/// to the node that owns the object's slot, with the slot's epoch.
public final class Gateway: Service, Sendable {
    /// The configuration.
    public let configuration: GatewayConfiguration
    /// The binding registry.
    public let registry: Registry
    /// The placement table.
    public let placement: PlacementTable
    private let exportedClasses: Set<String>
    let database: Database
    private let server: RPCServer
    private let router: Router
    private let logger: Logger
    private let onStarted: @Sendable (Int) -> Void

    /// Opens the gateway's database; nothing listens until ``start()``.
    public init(
        configuration: GatewayConfiguration, exportedClasses: Set<String>,
        logger: Logger = Logger(label: "durable.gateway"), onStarted: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws {
        self.configuration = configuration
        self.exportedClasses = exportedClasses
        self.logger = logger
        self.onStarted = onStarted
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        database = try Database(path: configuration.dataDirectory)
        registry = try Registry(database: database)
        placement = try PlacementTable(database: database)
        router = Router(
            registry: registry, placement: placement, environment: configuration.environment,
            nodeCredentials: configuration.keys?.clusterSecret, objectCallTimeout: configuration.objectCallTimeout,
            metrics: GatewayMetrics(factory: configuration.metricsFactory), logger: logger)
        server = RPCServer(
            host: configuration.host, port: configuration.rpcPort, handler: router,
            access: configuration.keys.map { RPCAccessControl(keys: $0.all, roles: Gateway.roles(allowedToCall:)) },
            logger: logger)
    }

    /// Who may call each of the gateway's methods: publishing and the operator methods (`durable.v1.Admin/…`) take
    /// an admin token, what nodes send takes the cluster secret, and calls to objects take any key.
    public static func roles(allowedToCall method: String) -> Set<RPCRole> {
        Methods.rolesAtGateway(method)
    }

    /// Publishes a configuration and tells every node about the resulting namespaces.
    ///
    /// - Parameters:
    ///   - migrations: migrations given by the deprecated command-line flags; the configuration's are then ignored.
    ///   - expectedTag: `--old-tag`, checked against the script's last applied tag.
    /// - Throws: the configuration or migration error, with nothing applied.
    @discardableResult
    public func publish(
        _ app: AppConfiguration, environment: String?, migrations: [Migration]? = nil, expectedTag: String? = nil
    ) async throws -> [RegistryChange] {
        let changes = try registry.publish(
            app, environment: environment, exportedClasses: exportedClasses, migrations: migrations,
            expectedTag: expectedTag)
        if environment == configuration.environment {
            router.script.withLock { $0 = app.scriptName(environment: environment) }
            router.vars.withLock { $0 = app.resolvedVars(environment: environment) }
        }
        router.cachedEnvironment.withLock { $0 = nil }
        logger.info(
            "published",
            metadata: [
                "script": "\(app.scriptName(environment: environment))",
                "changes": "\(changes.map(\.description).joined(separator: "; "))",
            ])
        await router.pushDefinitions(
            dropping: changes.compactMap {
                if case .deleted(let id) = $0 { return id }
                return nil
            })
        return changes
    }

    /// Adds a node (or its new address after a restart) and sends it the registry's namespaces and its slots.
    ///
    /// - Parameters:
    ///   - databaseIdentity: the identity of the node's database; a node id that comes back with another database is
    ///     refused (`FAILED_PRECONDITION`, naming both) unless `replacingLostNode` is set.
    ///   - replacingLostNode: the operator says the node replaces a lost one (its data is gone).
    /// - Returns: the identity of the gateway's registry, which the node checks against the one it joined.
    ///   - joinedRegistry: the identity of the registry the node joined before; another one is refused
    ///     (`FAILED_PRECONDITION`, naming both) before the node is told anything.
    @discardableResult
    public func register(
        nodeID: String, address: String, databaseIdentity: String? = nil, replacingLostNode: Bool = false,
        joinedRegistry: String? = nil
    ) async throws -> String {
        do {
            try await router.register(
                nodeID: nodeID, address: address, databaseIdentity: databaseIdentity,
                replacingLostNode: replacingLostNode, joinedRegistry: joinedRegistry)
            return registry.identity
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
    }

    /// The client WebSockets the gateway holds: give it to the HTTP bridge (as its relay) and to in-process nodes
    /// (as their hub).
    public var webSockets: any WebSocketRelay & WebSocketHub { router.sockets }

    /// How many client sockets ended whose close event still waits for its object (its node is unreachable or the
    /// object overloaded); the gateway keeps trying until the object has it.
    public var pendingWebSocketCloses: Int { router.sockets.pendingCloseCount }

    /// Calls objects along the gateway's routes: what in-process nodes give their objects for calls to others.
    public var objectTransport: any ObjectTransport {
        RoutingTransport(router: router, timeout: router.objectCallTimeout)
    }

    /// Sets the gauges of open WebSockets and registered nodes from the gateway's state. Run it before each scrape.
    public func updateGauges() {
        router.metrics.openWebSockets.record(router.sockets.count)
        router.metrics.nodes.record(placement.nodes.count)
    }

    /// The bindings of the gateway's script, as its worker sees them: each namespace's calls are routed to the
    /// owning node like calls that arrive over RPC.
    public func workerEnvironment() -> Environment {
        router.workerEnvironment()
    }

    /// Starts serving; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        router.gateway.withLock { $0 = self }
        let port = try await server.start()
        logger.info("gateway serving", metadata: ["address": "\(configuration.host):\(port)"])
        // The nodes that joined before learn this gateway's session (their sockets of an earlier session lost their
        // clients) and the registry as it is now.
        let router = self.router
        startupPush.withLock { $0 = Task { await router.pushDefinitions(dropping: []) } }
        return port
    }

    /// The push of the registry to the known nodes when the gateway starts.
    private let startupPush = Mutex<Task<Void, Never>?>(nil)

    /// Waits until the nodes known at start were sent the registry (or found unreachable).
    public func waitForStartupPush() async {
        await startupPush.withLock { $0 }?.value
    }

    /// Runs as a service (starting unless ``start()`` already did) until graceful shutdown, then stops.
    public func run() async throws {
        let port: Int
        if let started = server.port { port = started } else { port = try await start() }
        onStarted(port)
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops serving and closes the database.
    public func shutdown() async {
        await server.shutdown(gracePeriod: .seconds(10))
        await waitForStartupPush()
        await router.sockets.stop()
        await router.closeClients()
        database.close()
        logger.info("gateway stopped")
    }
}

/// Serves the gateway's RPC methods and routes object calls.
final class Router: RPCHandler {
    let registry: Registry
    let placement: PlacementTable
    let environment: String?
    let logger: Logger
    let gateway = Mutex<Gateway?>(nil)
    /// The script whose bindings `ResolveBinding` answers with (set by the publish of the gateway's environment).
    let script = Mutex<String?>(nil)
    /// The client WebSockets held here.
    let sockets: SocketRegistry
    /// The served script's `[vars]`, from its last publish.
    let vars = Mutex<[String: String]>([:])
    /// Slot announcements to nodes in flight, by slot.
    private let pendingAssignments = Mutex<[UInt16: Task<Void, any Error>]>([:])
    /// The id key of each namespace, made once (making one absorbs the secret into an HMAC state).
    private let namespaceKeys = Mutex<[String: NamespaceKey]>([:])
    /// The worker's environment, made again after each publish.
    let cachedEnvironment = Mutex<Environment?>(nil)
    private let clients = Mutex<[String: (address: String, client: DurableClient, calls: CallMetrics)]>([:])
    /// Where forwarded calls and gauges are recorded.
    let metrics: GatewayMetrics
    /// The cluster secret proved to nodes.
    private let nodeCredentials: RPCKey?
    /// How long a call made through the gateway's own bindings may take.
    let objectCallTimeout: Duration

    init(
        registry: Registry, placement: PlacementTable, environment: String?, nodeCredentials: RPCKey?,
        objectCallTimeout: Duration, metrics: GatewayMetrics, logger: Logger
    ) {
        self.objectCallTimeout = objectCallTimeout
        self.metrics = metrics
        self.registry = registry
        self.placement = placement
        self.environment = environment
        self.nodeCredentials = nodeCredentials
        self.logger = logger
        sockets = SocketRegistry(registry: registry, logger: logger)
        sockets.attach(self)
    }

    func handle(_ call: IncomingCall) async throws -> [UInt8] {
        switch call.method {
        case Methods.invoke:
            return try await forward(call.payload, deadline: call.deadline)
        case Methods.resolveBinding:
            return try resolve(Durable_V1_ResolveBindingRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.health:
            return try Durable_V1_HealthResponse.with {
                $0.nodeID = "gateway"
                $0.serving = true
            }.serializedBytes()
        case Methods.webSocketSend:
            let request = try Durable_V1_WebSocketSendRequest(serializedBytes: call.payload)
            try await sockets.deliver(request.frames.compactMap(WebSocketFrame.init(wire:)))
            return try Durable_V1_WebSocketSendResponse().serializedBytes()
        case Methods.tail:
            return try await GatewayTail.serve(call, router: self)
        case Methods.registerNode:
            let request = try Durable_V1_RegisterNodeRequest(serializedBytes: call.payload)
            try await register(
                nodeID: request.nodeID, address: request.address, databaseIdentity: request.databaseIdentity,
                replacingLostNode: request.replaceLostNode, joinedRegistry: request.registryIdentity)
            return try Durable_V1_RegisterNodeResponse.with { $0.registryIdentity = registry.identity }
                .serializedBytes()
        case Methods.publish:
            let request = try Durable_V1_PublishRequest(serializedBytes: call.payload)
            let app: AppConfiguration
            do {
                app = try ConfigurationParser.parse(request.configuration)
            } catch let error as ConfigurationError {
                throw RPCError(.invalidArgument, error.description)
            }
            guard let gateway = gateway.withLock({ $0 }) else { throw RPCError.unavailable("The gateway is starting.") }
            var migrations: [Migration]?
            var expectedTag: String?
            if request.hasCommandLineMigration {
                let flags = request.commandLineMigration
                migrations = [
                    Migration(
                        tag: flags.newTag, newClasses: flags.newClasses,
                        renamedClasses: flags.renamedClasses.map { Migration.Rename(from: $0.from, to: $0.to) },
                        deletedClasses: flags.deletedClasses,
                        transferredClasses: flags.transferredClasses.map {
                            Migration.Transfer(from: $0.from, fromScript: $0.fromScript, to: $0.to)
                        })
                ]
                expectedTag = flags.oldTag.isEmpty ? nil : flags.oldTag
            }
            do {
                let changes = try await gateway.publish(
                    app, environment: request.environment.isEmpty ? nil : request.environment,
                    migrations: migrations, expectedTag: expectedTag)
                return try Durable_V1_PublishResponse.with { $0.changes = changes.map { "\($0)" } }.serializedBytes()
            } catch let error as MigrationPlanner.PublishError {
                throw RPCError(.failedPrecondition, error.message)
            } catch let error as ConfigurationError {
                throw RPCError(.invalidArgument, error.description)
            }
        case let method where method.hasPrefix(Methods.adminPrefix):
            return try await handleAdmin(call)
        default:
            throw RPCError(.unimplemented, "Unknown method '\(call.method)'.")
        }
    }

    // MARK: Routing

    /// Delivers an invocation to the node that owns the object, assigning the object's slot first when it has no
    /// owner yet.
    ///
    /// - Throws: ``RPCError`` with the node's status, or `UNAVAILABLE` when the owner cannot be reached.
    func route(_ message: Durable_V1_InvokeRequest, deadline: ContinuousClock.Instant?) async throws
        -> Durable_V1_InvokeResponse
    {
        let reply = try await forward(try message.serializedBytes(), decoded: message, deadline: deadline)
        do {
            return try Durable_V1_InvokeResponse(serializedBytes: reply)
        } catch {
            throw RPCError(.internal, "The node's reply to an invocation does not decode: \(error)")
        }
    }

    /// Routes a serialized `InvokeRequest` and returns the owner's serialized `InvokeResponse` as it came.
    ///
    /// The request travels on as the caller sent it, with the routing fields the node needs (the object's id and
    /// the slot's epoch) appended: in protobuf's encoding the last value of a field wins, so the gateway neither
    /// re-encodes the request nor decodes the response it relays.
    func forward(
        _ payload: [UInt8], decoded: Durable_V1_InvokeRequest? = nil, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        let (message, id) = try target(of: payload, decoded: decoded)
        let remaining = deadline.map { $0 - .now }
        return try await withOwner(of: id, forwarding: true) { client, epoch in
            try await client.callSerialized(
                Methods.invoke, payload: try Self.routed(payload, message, id, epoch), timeout: remaining)
        }
    }

    /// Relays an invocation without a Swift task when its route is known already: the slot has an owner that
    /// knows its epoch, and a connection to that node is open. Otherwise (`nil`) the call goes through
    /// ``forward(_:decoded:deadline:)`` in a task, which can wait for those.
    func start(_ call: IncomingCall, reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void)
        -> (@Sendable () -> Void)?
    {
        guard call.method == Methods.invoke else { return nil }
        let message: Durable_V1_InvokeRequest
        let id: DurableObjectId
        let payload: [UInt8]
        do {
            (message, id) = try target(of: call.payload, decoded: nil)
            let slot = PlacementEpochs.slot(of: id)
            guard let assignment = placement.assignment(of: slot), pendingAssignments.withLock({ $0[slot] == nil })
            else { return nil }
            let node = try link(to: assignment.nodeID)
            guard let connection = node.client.openConnection() else { return nil }
            payload = try Self.routed(call.payload, message, id, assignment.epoch)
            let started = ContinuousClock.now
            return connection.call(Methods.invoke, payload: payload, timeout: call.deadline.map { $0 - .now }) {
                result in
                if case .failure(let error) = result {
                    node.calls.record(GatewayMetrics.outcome(error), since: started)
                } else {
                    node.calls.record(.ok, since: started)
                }
                reply(result)
            }
        } catch {
            reply(.failure(error as? RPCError ?? RPCError(.internal, "\(error)")))
            return {}
        }
    }

    /// The object an invocation is for: its message decoded, its namespace registered, its id valid.
    private func target(of payload: [UInt8], decoded: Durable_V1_InvokeRequest?) throws -> (
        Durable_V1_InvokeRequest, DurableObjectId
    ) {
        let message: Durable_V1_InvokeRequest
        do {
            message = try decoded ?? Durable_V1_InvokeRequest(serializedBytes: payload)
        } catch {
            throw RPCError(.invalidArgument, "The invocation does not decode as a durable.v1.InvokeRequest: \(error)")
        }
        guard let namespace = registry.state.namespaces[message.namespaceID] else {
            throw RPCError(.notFound, "No Durable Object namespace '\(message.namespaceID)' is registered.")
        }
        let key = namespaceKeys.withLock { keys in
            if let cached = keys[message.namespaceID], cached.secret == namespace.secret { return cached }
            let key = NamespaceKey(secret: namespace.secret)
            keys[message.namespaceID] = key
            return key
        }
        let name = message.objectName.isEmpty ? nil : message.objectName
        do {
            let id =
                message.objectID.isEmpty && name != nil
                ? key.id(forName: name!) : try key.id(bytes: Array(message.objectID), name: name)
            return (message, id)
        } catch {
            throw RPCError(serving: error)
        }
    }

    /// The request as the node gets it: the caller's bytes with the object's id (when the caller sent only a name)
    /// and the slot's epoch appended.
    private static func routed(
        _ payload: [UInt8], _ message: Durable_V1_InvokeRequest, _ id: DurableObjectId, _ epoch: UInt64
    ) throws -> [UInt8] {
        var routing = Durable_V1_InvokeRequest()
        if message.objectID.isEmpty { routing.objectID = Data(id.bytes) }
        routing.placementEpoch = epoch
        return payload + (try routing.serializedBytes())
    }

    /// Runs `body` with a client for the node that owns `id` and the slot's epoch.
    ///
    /// The first call to a new slot tells the owner about it; calls to the same slot that arrive meanwhile wait for
    /// that, so that none reaches the node with an epoch it has not been given yet.
    /// - Parameter forwarding: whether `body` forwards an invocation, to be counted in the node's metrics.
    func withOwner<T>(
        of id: DurableObjectId, forwarding: Bool = false, _ body: (DurableClient, UInt64) async throws -> T
    ) async throws -> T {
        let slot = PlacementEpochs.slot(of: id)
        let (assignment, announcement) = try ownerAnnouncing(slot)
        if let announcement {
            defer { _ = pendingAssignments.withLock { $0.removeValue(forKey: slot) } }
            try await announcement.value
        }
        let (client, calls) = try link(to: assignment.nodeID)
        guard forwarding else { return try await callNode(client) { try await body(client, assignment.epoch) } }
        let started = ContinuousClock.now
        do {
            let result = try await callNode(client) { try await body(client, assignment.epoch) }
            calls.record(.ok, since: started)
            return result
        } catch {
            calls.record(GatewayMetrics.outcome(error), since: started)
            throw error
        }
    }

    /// The owner of `slot`, and the announcement of the slot to it when one is in flight (started here when the
    /// slot is new).
    private func ownerAnnouncing(_ slot: UInt16) throws -> (
        assignment: PlacementTable.Assignment, announcement: Task<Void, any Error>?
    ) {
        try pendingAssignments.withLock { pending -> (PlacementTable.Assignment, Task<Void, any Error>?) in
            let (assignment, isNew) = try ownerOrThrow(slot)
            guard isNew else { return (assignment, pending[slot]) }
            let owner = try client(for: assignment.nodeID)
            let request = Durable_V1_AssignSlotsRequest.with {
                $0.assignments = [
                    .with {
                        $0.slot = UInt32(slot); $0.epoch = assignment.epoch
                    }
                ]
            }
            let task = Task<Void, any Error> {
                do {
                    let _: Durable_V1_AssignSlotsResponse = try await owner.call(Methods.assignSlots, request)
                } catch let error as DurableObjectError {
                    throw RPCError(error)
                }
            }
            pending[slot] = task
            return (assignment, task)
        }
    }

    private func ownerOrThrow(_ slot: UInt16) throws -> (assignment: PlacementTable.Assignment, isNew: Bool) {
        do {
            return try placement.owner(of: slot)
        } catch {
            throw RPCError(serving: error)
        }
    }

    /// Runs a call to a node, passing its status through unchanged.
    private func callNode<T>(_ client: DurableClient, _ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let error as DurableObjectError {
            throw RPCError(error)
        }
    }

    func client(for nodeID: String) throws -> DurableClient {
        try link(to: nodeID).client
    }

    /// The client of the node `nodeID`, and the metrics of the calls forwarded to it.
    private func link(to nodeID: String) throws -> (client: DurableClient, calls: CallMetrics) {
        guard let address = placement.nodes[nodeID] else {
            throw RPCError.unavailable("Node \(nodeID) is not registered.")
        }
        return clients.withLock { clients in
            if let existing = clients[nodeID], existing.address == address { return (existing.client, existing.calls) }
            let parts = address.split(separator: ":")
            let client = DurableClient(
                host: String(parts.first ?? "127.0.0.1"), port: Int(parts.last ?? "0") ?? 0, connections: 2,
                credentials: nodeCredentials, logger: logger)
            let calls = clients[nodeID]?.calls ?? metrics.forwarding(to: nodeID)
            clients[nodeID] = (address, client, calls)
            return (client, calls)
        }
    }

    func resolve(_ request: Durable_V1_ResolveBindingRequest) throws -> Durable_V1_ResolveBindingResponse {
        let state = registry.state
        let script = self.script.withLock { $0 } ?? (state.bindings.count == 1 ? state.bindings.keys.first : nil)
        let bindings = script.flatMap { state.bindings[$0] } ?? []
        guard let script, let binding = bindings.first(where: { $0.name == request.binding }),
            let namespace = state.namespace(for: binding, script: script)
        else {
            let known = bindings.map(\.name).sorted().joined(separator: ", ")
            throw RPCError(.notFound, "No Durable Object binding named '\(request.binding)' (bindings: \(known)).")
        }
        return Durable_V1_ResolveBindingResponse.with {
            $0.namespaceID = namespace.id
            $0.className = namespace.className
            $0.idKey = Data(namespace.secret)
        }
    }

    /// The bindings of the served script with a transport that routes through this router.
    func workerEnvironment() -> Environment {
        if let cached = cachedEnvironment.withLock({ $0 }) { return cached }
        let state = registry.state
        let script = self.script.withLock { $0 } ?? (state.bindings.count == 1 ? state.bindings.keys.first : nil)
        let transport = RoutingTransport(router: self, timeout: objectCallTimeout)
        var namespaces: [String: DurableObjectNamespace] = [:]
        for binding in script.flatMap({ state.bindings[$0] }) ?? [] {
            guard let script, let namespace = state.namespace(for: binding, script: script) else { continue }
            namespaces[binding.name] = DurableObjectNamespace(
                namespaceID: namespace.id, className: namespace.className, key: NamespaceKey(secret: namespace.secret),
                transport: transport)
        }
        let environment = Environment(namespaces: namespaces, vars: vars.withLock { $0 })
        cachedEnvironment.withLock { $0 = environment }
        return environment
    }

    // MARK: Nodes

    func register(
        nodeID: String, address: String, databaseIdentity: String? = nil, replacingLostNode: Bool = false,
        joinedRegistry: String? = nil
    ) async throws {
        guard !nodeID.isEmpty, address.contains(":") else {
            throw RPCError(.invalidArgument, "A node registers with a node id and a host:port address.")
        }
        if let joinedRegistry, !joinedRegistry.isEmpty, joinedRegistry != registry.identity {
            let message =
                "Node '\(nodeID)' joined registry \(joinedRegistry), but this gateway's registry is "
                + "\(registry.identity): the gateway is another cluster's, or its database was replaced, and its "
                + "namespaces would not match the node's data."
            logger.error("node refused", metadata: ["node": "\(nodeID)", "error": "\(message)"])
            throw RPCError(.failedPrecondition, message)
        }
        let check: PlacementTable.IdentityCheck
        do {
            check = try placement.register(
                nodeID: nodeID, address: address, databaseIdentity: databaseIdentity,
                replacingLostNode: replacingLostNode)
        } catch let error as DurableObjectError {
            logger.error("node refused", metadata: ["node": "\(nodeID)", "error": "\(error.message)"])
            throw RPCError(error)
        }
        switch check {
        case .replaced(let lost):
            logger.warning(
                "node replaces a lost node: the data of its slots is gone",
                metadata: [
                    "node": "\(nodeID)", "lost-database": "\(lost)", "database": "\(databaseIdentity ?? "")",
                    "slots": "\(placement.slots(of: nodeID).count)",
                ])
        case .unchecked:
            logger.notice("node registered without a database identity", metadata: ["node": "\(nodeID)"])
        case .recorded, .matched:
            break
        }
        logger.info("node registered", metadata: ["node": "\(nodeID)", "address": "\(address)"])
        try await push(to: nodeID, dropping: [])
    }

    /// Sends every node the registry's namespaces, bindings and its slot epochs.
    func pushDefinitions(dropping dropped: [String]) async {
        for nodeID in placement.nodes.keys.sorted() {
            do {
                try await push(to: nodeID, dropping: dropped)
            } catch {
                logger.notice(
                    "node unreachable; it receives the definitions when it registers again",
                    metadata: ["node": "\(nodeID)", "error": "\(error)"])
            }
        }
    }

    private func push(to nodeID: String, dropping dropped: [String]) async throws {
        let client = try client(for: nodeID)
        let state = registry.state
        if !dropped.isEmpty {
            let _: Durable_V1_DropNamespacesResponse = try await callNode(client) {
                try await client.call(
                    Methods.dropNamespaces, Durable_V1_DropNamespacesRequest.with { $0.namespaceIds = dropped })
            }
        }
        let bindings = state.bindings.flatMap { script, bindings in
            bindings.compactMap { binding -> Durable_V1_BindingDefinition? in
                guard let namespace = state.namespace(for: binding, script: script) else { return nil }
                return .with {
                    $0.name = binding.name
                    $0.namespaceID = namespace.id
                }
            }
        }
        let _: Durable_V1_DefineNamespacesResponse = try await callNode(client) {
            try await client.call(
                Methods.defineNamespaces,
                Durable_V1_DefineNamespacesRequest.with {
                    $0.namespaces = state.namespaces.values.sorted { $0.id < $1.id }.map { namespace in
                        .with {
                            $0.id = namespace.id
                            $0.className = namespace.className
                            $0.idKey = Data(namespace.secret)
                        }
                    }
                    $0.bindings = bindings
                    $0.complete = true
                    $0.gatewaySessions = [sockets.session]
                })
        }
        let slots = placement.slots(of: nodeID)
        if !slots.isEmpty {
            let _: Durable_V1_AssignSlotsResponse = try await callNode(client) {
                try await client.call(
                    Methods.assignSlots,
                    Durable_V1_AssignSlotsRequest.with {
                        $0.assignments = slots.map { entry in
                            .with {
                                $0.slot = UInt32(entry.slot); $0.epoch = entry.epoch
                            }
                        }
                    })
            }
        }
    }

    func closeClients() async {
        let all = clients.withLock { clients -> [DurableClient] in
            defer { clients.removeAll() }
            return clients.values.map(\.client)
        }
        for client in all { await client.close() }
    }
}

/// Calls objects from inside the gateway (the worker's bindings) along the same route as RPC invocations.
struct RoutingTransport: ObjectTransport {
    let router: Router
    /// How long a call may take when the caller gives no deadline.
    var timeout: Duration

    func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response {
        var message = Durable_V1_InvokeRequest()
        message.namespaceID = namespaceID
        message.objectID = Data(id.bytes)
        message.objectName = id.name ?? ""
        message.request = request.wire
        do {
            let response = try await router.route(message, deadline: .now + timeout)
            return Response(wire: response.response)
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
    }
}
