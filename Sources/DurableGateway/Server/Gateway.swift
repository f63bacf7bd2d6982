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
    /// The `host:port` nodes and other gateways reach this gateway's RPC port at (default: `host` and the bound
    /// port; set it when listening on `0.0.0.0`).
    public var advertisedAddress: String?
    /// Whether the gateway rebalances the slots by itself when a node registers and the nodes' shares of the
    /// assigned slots differ by more than a tenth of a share (as `durable rebalance` does). Off by default.
    public var autoRebalance = false
    /// How often the gateway looks for slot moves whose gateway is gone, to undo them, and asks the nodes how much
    /// data they store (new slots go to those with the least, see ``NewSlotOwner``). 5 seconds by default.
    public var moveRepairInterval: Duration = .seconds(5)
    /// How long, after a node reported an object overloaded, the gateway refuses further calls to that object itself
    /// with the node's error instead of forwarding them (``OverloadShedding``): 5 ms by default; zero forwards every
    /// call.
    public var overloadHoldOff: Duration = .milliseconds(5)
    /// The certificate the RPC port serves TLS with (client certificates optional, verified against the CA when
    /// presented); `nil` serves plaintext.
    public var tls: RPCServerTLS?
    /// How the gateway connects to nodes over TLS (its certificate and the cluster's CA); `nil` for plaintext.
    public var nodeTLS: RPCClientTLS?

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
///
/// Its parts, one job each: ``ObjectRouter`` (calls to objects), ``NodeLinks`` (connections to nodes),
/// ``NodeRegistrar`` (admitting and informing nodes), ``WorkerBindings`` (the served script's bindings),
/// ``GatewayPublisher`` (applying configurations), ``SocketRegistry`` (client WebSockets), ``AdminService``
/// (operator methods) and ``GatewayRPCHandler``, which answers each RPC method with the right part.
public final class Gateway: Service, Sendable {
    /// The configuration.
    public let configuration: GatewayConfiguration
    /// The binding registry.
    public let registry: any RegistryStore
    /// The placement table.
    public let placement: any PlacementStore
    /// Where the registry, the placement and the live gateways are kept.
    public let cluster: any ClusterStore
    let database: Database
    private let server: RPCServer
    private let links: NodeLinks
    private let router: ObjectRouter
    private let registrar: NodeRegistrar
    private let bindings: WorkerBindings
    private let publisher: GatewayPublisher
    private let sockets: SocketRegistry
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let onStarted: @Sendable (Int) -> Void
    /// The push of the registry to the known nodes when the gateway starts.
    private let startupPush = Mutex<Task<Void, Never>?>(nil)
    private let mover: SlotMover
    /// Undoes abandoned slot moves every ``GatewayConfiguration/moveRepairInterval`` while the gateway serves.
    private let moveRepair = Mutex<Task<Void, Never>?>(nil)

    /// Opens the gateway's database; nothing listens until ``start()``.
    ///
    /// - Parameters:
    ///   - configuration: how the gateway runs.
    ///   - exportedClasses: the object classes the app provides (what publishes are checked against).
    ///   - cluster: where the registry and placement live (an ``EtcdClusterStore``, shared by several gateways);
    ///     `nil` keeps them in the gateway's database (an ``EmbeddedClusterStore``). The gateway closes it when it
    ///     stops.
    ///   - logger: where the gateway logs.
    ///   - onStarted: called with the RPC port once the gateway serves.
    public init(
        configuration: GatewayConfiguration, exportedClasses: Set<String>, cluster: (any ClusterStore)? = nil,
        logger: Logger = Logger(label: "durable.gateway"), onStarted: @escaping @Sendable (Int) -> Void = { _ in }
    ) throws {
        self.configuration = configuration
        self.logger = logger
        self.onStarted = onStarted
        try FileManager.default.createDirectory(atPath: configuration.dataDirectory, withIntermediateDirectories: true)
        database = try Database(path: configuration.dataDirectory)
        let cluster = try cluster ?? EmbeddedClusterStore(database: database)
        self.cluster = cluster
        let registry = cluster.registry
        let placement = cluster.placement
        self.registry = registry
        self.placement = placement
        metrics = GatewayMetrics(factory: configuration.metricsFactory)
        links = NodeLinks(
            placement: placement, credentials: configuration.keys?.clusterSecret, tls: configuration.nodeTLS,
            metrics: metrics, logger: logger)
        router = ObjectRouter(
            registry: registry, placement: placement, links: links,
            shedding: OverloadShedding(holdOff: configuration.overloadHoldOff, factory: configuration.metricsFactory))
        sockets = SocketRegistry(registry: registry, logger: logger)
        sockets.attach(router)
        let session = sockets.session
        let mover = SlotMover(
            placement: placement, links: links, session: session,
            liveSessions: { Set(cluster.liveGateways.keys).union([session]) }, logger: logger)
        self.mover = mover
        let rebalancer = SlotRebalancer(
            placement: placement, mover: mover,
            eligibleNodes: { (placement as? EtcdPlacementStore)?.liveNodes ?? Set(placement.nodes.keys) },
            logger: logger)
        let autoRebalance = configuration.autoRebalance
        registrar = NodeRegistrar(
            registry: registry, placement: placement, links: links,
            liveGatewaySessions: { Array(Set(cluster.liveGateways.keys).union([session])) }, logger: logger,
            nodeRegistered: { _ in
                guard autoRebalance else { return }
                Task { await rebalancer.rebalanceIfUneven() }
            })
        bindings = WorkerBindings(
            registry: registry, environment: configuration.environment,
            transport: RoutingTransport(router: router, timeout: configuration.objectCallTimeout))
        publisher = GatewayPublisher(
            registry: registry, exportedClasses: exportedClasses, bindings: bindings, registrar: registrar,
            logger: logger)
        let handler = GatewayRPCHandler(
            router: router, bindings: bindings, registrar: registrar, publisher: publisher, sockets: sockets,
            admin: AdminService(
                placement: placement, links: links, bindings: bindings, gatewayDatabase: database,
                status: ClusterStatusReport(cluster: cluster, links: links, session: session),
                mover: mover, rebalancer: rebalancer, logger: logger),
            registry: registry, placement: placement, links: links, logger: logger)
        server = RPCServer(
            host: configuration.host, port: configuration.rpcPort, handler: handler,
            access: configuration.keys.map { RPCAccessControl(keys: $0.all, roles: Gateway.roles(allowedToCall:)) },
            tls: configuration.tls, logger: logger)
        // Another gateway's publish: the worker's bindings change, and the nodes hear of it from every gateway that
        // saw it (nodes ignore definitions older than the newest they have), so none misses it if the publishing
        // gateway died before telling them.
        let (bindings, registrar) = (self.bindings, self.registrar)
        registry.onChange { before, after in
            bindings.published(served: nil)
            let dropped = after.changes(since: before).compactMap { change -> String? in
                if case .deleted(let id) = change { return id }
                return nil
            }
            Task { await registrar.pushDefinitions(dropping: dropped) }
        }
        // Another gateway left: the nodes close the sockets it held (their objects get a close event) when told the
        // sessions alive now.
        // Its slot moves are undone too.
        cluster.onGatewayDeparture { _ in
            Task {
                await registrar.pushDefinitions(dropping: [])
                await mover.undoAbandonedMoves()
            }
        }
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
        try await publisher.publish(app, environment: environment, migrations: migrations, expectedTag: expectedTag)
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
    ///   - inProcess: for a node in this process, the link that calls it directly; the gateway then reaches it
    ///     without its port (its address still identifies it).
    @discardableResult
    public func register(
        nodeID: String, address: String, databaseIdentity: String? = nil, replacingLostNode: Bool = false,
        joinedRegistry: String? = nil, inProcess: InProcessNodeLink? = nil
    ) async throws -> String {
        links.use(inProcess, for: nodeID, at: address)
        do {
            try await registrar.register(
                nodeID: nodeID, address: address, databaseIdentity: databaseIdentity,
                replacingLostNode: replacingLostNode, joinedRegistry: joinedRegistry)
            return registry.identity
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
    }

    /// The client WebSockets the gateway holds: give it to the HTTP bridge (as its relay) and to in-process nodes
    /// (as their hub).
    public var webSockets: any WebSocketRelay & WebSocketHub { sockets }

    /// How many client sockets ended whose close event still waits for its object (its node is unreachable or the
    /// object overloaded); the gateway keeps trying until the object has it.
    public var pendingWebSocketCloses: Int { sockets.pendingCloseCount }

    /// Calls objects along the gateway's routes: what in-process nodes give their objects for calls to others.
    public var objectTransport: any ObjectTransport {
        RoutingTransport(router: router, timeout: configuration.objectCallTimeout)
    }

    /// Sets the gauges of open WebSockets and registered nodes from the gateway's state. Run it before each scrape.
    public func updateGauges() {
        metrics.openWebSockets.record(sockets.count)
        metrics.nodes.record(placement.nodes.count)
    }

    /// The bindings of the gateway's script, as its worker sees them: each namespace's calls are routed to the
    /// owning node like calls that arrive over RPC.
    public func workerEnvironment() -> Environment {
        bindings.workerEnvironment()
    }

    /// Starts serving; returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let port = try await server.start()
        // Alive for nodes and other gateways before anyone is told of this gateway's session.
        do {
            try await cluster.announceGateway(
                session: sockets.session, address: configuration.advertisedAddress ?? "\(configuration.host):\(port)")
        } catch {
            await server.shutdown(gracePeriod: .zero)
            throw error
        }
        logger.info(
            "gateway serving", metadata: ["address": "\(configuration.host):\(port)", "session": "\(sockets.session)"])
        // The nodes that joined before learn this gateway's session (their sockets of an earlier session lost their
        // clients) and the registry as it is now.
        let registrar = self.registrar
        startupPush.withLock { $0 = Task { await registrar.pushDefinitions(dropping: []) } }
        // Moves a gateway left unfinished (this one before a restart, or one that is gone) are undone; the nodes'
        // stored bytes are kept current for the placement of new slots.
        let (mover, placement, links) = (self.mover, self.placement, self.links)
        let interval = configuration.moveRepairInterval
        moveRepair.withLock {
            $0 = Task {
                while !Task.isCancelled {
                    await mover.undoAbandonedMoves()
                    await Self.pollStoredBytes(placement: placement, links: links)
                    try? await Task.sleep(for: interval)
                }
            }
        }
        return port
    }

    /// Asks every node how many bytes it stores (`Node/Stats`) and tells the placement; a node that does not answer
    /// keeps its last figure.
    private static func pollStoredBytes(placement: any PlacementStore, links: NodeLinks) async {
        var bytes: [String: UInt64] = [:]
        for nodeID in placement.nodes.keys {
            guard let node = try? links.node(nodeID),
                let stats: Durable_V1_StatsResponse = try? await node.call(
                    Methods.stats, Durable_V1_StatsRequest(), timeout: .seconds(5))
            else { continue }
            bytes[nodeID] = stats.storedBytes
        }
        placement.recordStoredBytes(bytes)
    }

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
        moveRepair.withLock { $0?.cancel() }
        await waitForStartupPush()
        await sockets.stop()
        await links.closeAll()
        await cluster.close()
        database.close()
        logger.info("gateway stopped")
    }
}
