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

/// A gateway and storage nodes in the test process, talking RPC over loopback sockets, each on its own RocksDB
/// database in a temporary folder; optionally the HTTP bridge in front.
final class LocalCluster: Sendable {
    let folder: TemporaryDirectory
    let gateway: Gateway
    private let nodeList: Mutex<[StorageNode]>
    private let runtimeConfiguration: RuntimeConfiguration
    private let classes: [DurableObjectClass]
    /// The running nodes.
    var nodes: [StorageNode] { nodeList.withLock { $0 } }
    let rpcPort: Int
    let client: DurableClient
    private let bridgeGroup: ServiceGroup?
    private let bridgeTask: Task<Void, any Error>?
    /// The HTTP bridge's port, when it runs.
    let httpPort: Int?

    /// Starts a gateway for `app` and `nodeCount` nodes, publishes `configuration` (when given), and starts the
    /// HTTP bridge when the app has a worker.
    static func start(
        app: DurableApplication, nodes nodeCount: Int, configuration: String? = nil,
        runtime: RuntimeConfiguration = RuntimeConfiguration(), objectCallTimeout: Duration = .seconds(60)
    ) async throws -> LocalCluster {
        let folder = TemporaryDirectory("cluster")
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                rpcPort: 0, dataDirectory: folder.child("gateway"), objectCallTimeout: objectCallTimeout),
            exportedClasses: app.classNames, logger: logger)
        if let configuration {
            try await gateway.publish(ConfigurationParser.parse(configuration), environment: nil)
        }
        let rpcPort = try await gateway.start()
        var nodes: [StorageNode] = []
        for number in 1...nodeCount {
            let node = try StorageNode(
                configuration: NodeConfiguration(
                    port: 0, dataDirectory: folder.child("node-\(number)"), nodeID: "node-\(number)", runtime: runtime),
                classes: app.classes, bindings: [:], logger: logger)
            try node.routeObjectCalls(through: gateway.objectTransport)
            node.sendWebSocketFrames(through: gateway.webSockets)
            let port = try await node.start()
            let registry = try await gateway.register(
                nodeID: "node-\(number)", address: "127.0.0.1:\(port)", databaseIdentity: node.databaseIdentity,
                joinedRegistry: try node.joinedRegistryIdentity)
            try node.checkRegistry(registry)
            nodes.append(node)
        }
        var group: ServiceGroup?
        var task: Task<Void, any Error>?
        var httpPort: Int?
        if let worker = app.worker {
            let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
            let bridge = HTTPBridge(
                configuration: HTTPBridgeConfiguration(port: 0), worker: worker,
                environment: { gateway.workerEnvironment() }, webSockets: gateway.webSockets, logger: logger,
                onStarted: { port in continuation.yield(port) })
            let serviceGroup = ServiceGroup(configuration: .init(services: [bridge], logger: logger))
            task = Task { try await serviceGroup.run() }
            group = serviceGroup
            for await port in ports {
                httpPort = port
                break
            }
        }
        return LocalCluster(
            folder: folder, gateway: gateway, nodes: nodes, rpcPort: rpcPort, bridgeGroup: group, bridgeTask: task,
            httpPort: httpPort, runtime: runtime, classes: app.classes)
    }

    private init(
        folder: TemporaryDirectory, gateway: Gateway, nodes: [StorageNode], rpcPort: Int, bridgeGroup: ServiceGroup?,
        bridgeTask: Task<Void, any Error>?, httpPort: Int?, runtime: RuntimeConfiguration, classes: [DurableObjectClass]
    ) {
        self.folder = folder
        self.gateway = gateway
        self.nodeList = Mutex(nodes)
        self.runtimeConfiguration = runtime
        self.classes = classes
        self.rpcPort = rpcPort
        self.bridgeGroup = bridgeGroup
        self.bridgeTask = bridgeTask
        self.httpPort = httpPort
        client = DurableClient(host: "127.0.0.1", port: rpcPort)
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
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let node = try StorageNode(
            configuration: NodeConfiguration(
                port: 0, dataDirectory: old.configuration.dataDirectory, nodeID: old.configuration.nodeID,
                runtime: runtimeConfiguration),
            classes: classes, bindings: [:], logger: logger)
        try node.routeObjectCalls(through: gateway.objectTransport)
        node.sendWebSocketFrames(through: gateway.webSockets)
        let port = try await node.start()
        let registry = try await gateway.register(
            nodeID: old.configuration.nodeID, address: "127.0.0.1:\(port)", databaseIdentity: node.databaseIdentity,
            joinedRegistry: try node.joinedRegistryIdentity)
        try node.checkRegistry(registry)
        nodeList.withLock { $0[index] = node }
    }

    /// Stops everything and closes the databases.
    func close() async {
        await client.close()
        if let bridgeGroup {
            await bridgeGroup.triggerGracefulShutdown()
            _ = try? await bridgeTask?.value
        }
        await gateway.shutdown()
        for node in nodes { await node.shutdown() }
    }
}

/// Runs `body` with a cluster, closing it afterwards whatever happens.
func withLocalCluster<T>(
    app: DurableApplication, nodes: Int, configuration: String? = nil,
    runtime: RuntimeConfiguration = RuntimeConfiguration(), objectCallTimeout: Duration = .seconds(60),
    _ body: (LocalCluster) async throws -> T
) async throws -> T {
    let cluster = try await LocalCluster.start(
        app: app, nodes: nodes, configuration: configuration, runtime: runtime, objectCallTimeout: objectCallTimeout)
    do {
        let value = try await body(cluster)
        await cluster.close()
        return value
    } catch {
        await cluster.close()
        throw error
    }
}
