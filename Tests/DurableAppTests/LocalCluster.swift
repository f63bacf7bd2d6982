import DurableApp
import DurableClient
import DurableGateway
import DurableHTTP
import DurableNode
import DurableObjects
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import TestSupport

/// A gateway and storage nodes in the test process, each node on its own RocksDB database in a temporary folder;
/// the gateway calls its nodes in-process (``InProcessNodeLink``), as `durable dev` does; clients reach the gateway
/// over its loopback RPC port; optionally the HTTP bridge in front.
final class LocalCluster: Sendable {
    /// The gateway and the HTTP bridge in front of it; both are replaced by ``restartGateway()``.
    private struct Front {
        var gateway: Gateway
        var rpcPort: Int
        var client: DurableClient
        var bridgeGroup: ServiceGroup?
        var bridgeTask: Task<Void, any Error>?
        var httpPort: Int?
    }

    let folder: TemporaryDirectory
    private let front: Mutex<Front>
    private let nodeList: Mutex<[StorageNode]>
    private let app: DurableApplication
    private let runtimeConfiguration: RuntimeConfiguration
    private let objectCallTimeout: Duration
    private let moveRepairInterval: Duration
    /// The running nodes.
    var nodes: [StorageNode] { nodeList.withLock { $0 } }
    /// The running gateway.
    var gateway: Gateway { front.withLock { $0.gateway } }
    /// The gateway's RPC port.
    var rpcPort: Int { front.withLock { $0.rpcPort } }
    /// A client of the gateway's RPC port.
    var client: DurableClient { front.withLock { $0.client } }
    /// The HTTP bridge's port, when it runs.
    var httpPort: Int? { front.withLock { $0.httpPort } }

    private static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    /// Starts a gateway for `app` and `nodeCount` nodes, publishes `configuration` (when given), and starts the
    /// HTTP bridge when the app has a worker.
    static func start(
        app: DurableApplication, nodes nodeCount: Int, configuration: String? = nil,
        runtime: RuntimeConfiguration = RuntimeConfiguration(), objectCallTimeout: Duration = .seconds(60),
        moveRepairInterval: Duration = .seconds(5)
    ) async throws -> LocalCluster {
        let folder = TemporaryDirectory("cluster")
        let front = try await startFront(
            app: app, folder: folder, objectCallTimeout: objectCallTimeout, moveRepairInterval: moveRepairInterval,
            configuration: configuration)
        var nodes: [StorageNode] = []
        for number in 1...nodeCount {
            let node = try StorageNode(
                configuration: NodeConfiguration(
                    port: 0, dataDirectory: folder.child("node-\(number)"), nodeID: "node-\(number)", runtime: runtime),
                classes: app.classes, bindings: [:], logger: logger)
            try await join(node, to: front.gateway)
            nodes.append(node)
        }
        return LocalCluster(
            folder: folder, front: front, nodes: nodes, app: app, runtime: runtime,
            objectCallTimeout: objectCallTimeout, moveRepairInterval: moveRepairInterval)
    }

    /// Starts a gateway on `folder/gateway` (publishing `configuration`, when given) and the HTTP bridge in front of
    /// it when the app has a worker.
    private static func startFront(
        app: DurableApplication, folder: TemporaryDirectory, objectCallTimeout: Duration,
        moveRepairInterval: Duration, configuration: String?
    ) async throws -> Front {
        var gatewayConfiguration = GatewayConfiguration(
            rpcPort: 0, dataDirectory: folder.child("gateway"), objectCallTimeout: objectCallTimeout)
        gatewayConfiguration.moveRepairInterval = moveRepairInterval
        let gateway = try Gateway(
            configuration: gatewayConfiguration,
            exportedClasses: app.classNames, logger: logger)
        if let configuration {
            try await gateway.publish(ConfigurationParser.parse(configuration), environment: nil)
        }
        let rpcPort = try await gateway.start()
        var front = Front(
            gateway: gateway, rpcPort: rpcPort, client: DurableClient(host: "127.0.0.1", port: rpcPort))
        if let worker = app.worker {
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let bridge = HTTPBridge(
                configuration: HTTPBridgeConfiguration(port: 0), worker: worker,
                environment: { gateway.workerEnvironment() }, webSockets: gateway.webSockets, logger: logger,
                onStarted: { port in continuation.yield(port) })
            let serviceGroup = ServiceGroup(configuration: .init(services: [bridge], logger: logger))
            front.bridgeTask = Task { try await serviceGroup.run() }
            front.bridgeGroup = serviceGroup
            for await port in ports {
                front.httpPort = port
                break
            }
        }
        return front
    }

    /// Starts `node` and joins it to `gateway`, which calls it in-process.
    private static func join(_ node: StorageNode, to gateway: Gateway) async throws {
        try await InProcessNodes.join(node, to: gateway)
    }

    private init(
        folder: TemporaryDirectory, front: Front, nodes: [StorageNode], app: DurableApplication,
        runtime: RuntimeConfiguration, objectCallTimeout: Duration, moveRepairInterval: Duration
    ) {
        self.moveRepairInterval = moveRepairInterval
        self.folder = folder
        self.front = Mutex(front)
        self.nodeList = Mutex(nodes)
        self.app = app
        self.runtimeConfiguration = runtime
        self.objectCallTimeout = objectCallTimeout
    }

    /// The base URL of the HTTP bridge.
    var url: String { "http://127.0.0.1:\(httpPort!)" }

    /// Publishes a configuration for `environment`.
    @discardableResult
    func publish(_ text: String, environment: String? = nil) async throws -> [RegistryChange] {
        try await gateway.publish(ConfigurationParser.parse(text), environment: environment)
    }

    /// The objects of `className` in `script` (following renames and transfers), called through the gateway's RPC
    /// port.
    func namespace(script: String, className: String) throws -> DurableObjectNamespace {
        guard let namespace = gateway.registry.state.namespace(script: script, className: className) else {
            throw DurableObjectError(.notFound, "no namespace for \(script)/\(className)")
        }
        return DurableObjectNamespace(
            namespaceID: namespace.id, className: namespace.className, key: NamespaceKey(secret: namespace.secret),
            transport: client)
    }

    /// Shuts node `index` down gracefully and starts it again on the same database (a new port); it joins the
    /// gateway again.
    func restartNode(_ index: Int) async throws {
        await stopNode(index)
        try await startNode(index)
    }

    /// Shuts node `index` down gracefully; the gateway keeps its slots until ``startNode(_:)`` brings it back.
    func stopNode(_ index: Int) async {
        await nodes[index].shutdown()
    }

    /// Starts node `index` again on its database (a new port) after ``stopNode(_:)``; it joins the gateway again.
    func startNode(_ index: Int) async throws {
        let old = nodes[index]
        let node = try StorageNode(
            configuration: NodeConfiguration(
                port: 0, dataDirectory: old.configuration.dataDirectory, nodeID: old.configuration.nodeID,
                runtime: runtimeConfiguration),
            classes: app.classes, bindings: [:], logger: Self.logger)
        try await Self.join(node, to: gateway)
        nodeList.withLock { $0[index] = node }
    }

    /// Stops the gateway and then the HTTP bridge, as if the process crashed (every client connection ends and no
    /// close event reaches an object), and starts them again on the gateway's database, with new ports; the nodes
    /// keep running and are pointed at the new gateway, which tells them its session when it starts.
    func restartGateway() async throws {
        await stopFront(gatewayFirst: true)
        let front = try await Self.startFront(
            app: app, folder: folder, objectCallTimeout: objectCallTimeout, moveRepairInterval: moveRepairInterval,
            configuration: nil)
        for node in nodes {
            try node.routeObjectCalls(through: front.gateway.objectTransport)
            node.sendWebSocketFrames(through: front.gateway.webSockets)
        }
        self.front.withLock { $0 = front }
        await front.gateway.waitForStartupPush()
    }

    private func stopFront(gatewayFirst: Bool = false) async {
        let front = self.front.withLock { $0 }
        await front.client.close()
        if gatewayFirst { await front.gateway.shutdown() }
        if let bridgeGroup = front.bridgeGroup {
            await bridgeGroup.triggerGracefulShutdown()
            _ = try? await front.bridgeTask?.value
        }
        if !gatewayFirst { await front.gateway.shutdown() }
    }

    /// Stops everything and closes the databases.
    func close() async {
        await stopFront()
        for node in nodes { await node.shutdown() }
    }
}

/// Runs `body` with a cluster, closing it afterwards whatever happens.
func withLocalCluster<T>(
    app: DurableApplication, nodes: Int, configuration: String? = nil,
    runtime: RuntimeConfiguration = RuntimeConfiguration(), objectCallTimeout: Duration = .seconds(60),
    moveRepairInterval: Duration = .seconds(5), _ body: (LocalCluster) async throws -> T
) async throws -> T {
    let cluster = try await LocalCluster.start(
        app: app, nodes: nodes, configuration: configuration, runtime: runtime, objectCallTimeout: objectCallTimeout,
        moveRepairInterval: moveRepairInterval)
    do {
        let value = try await body(cluster)
        await cluster.close()
        return value
    } catch {
        await cluster.close()
        throw error
    }
}
