import Foundation
import Synchronization

/// A gateway and storage nodes as real processes on loopback, each on its own data folder in one temporary
/// folder: the one way tests start a cluster.
///
/// ```swift
/// try await withTestCluster(nodes: 2) { cluster in
///     let client = DurableClient(host: "127.0.0.1", port: cluster.gateway.port, credentials: TestKeys.api)
///     …
/// }
/// ```
///
/// Node `n` (from 1) runs as `--node-id node<n>` on `folder/node<n>`, the gateway on `folder/gateway`.
public final class TestCluster: Sendable {
    /// The folder holding every data folder.
    public let folder: TemporaryDirectory
    private let nodeArguments: [String]
    private let gatewayArguments: [String]
    private let gatewayEnvironment: [String: String]
    private let state: Mutex<(gateway: ServerProcess?, nodes: [Int: ServerProcess])>

    private init(
        folder: TemporaryDirectory, nodeArguments: [String], gatewayArguments: [String],
        gatewayEnvironment: [String: String]
    ) {
        self.folder = folder
        self.nodeArguments = nodeArguments
        self.gatewayArguments = gatewayArguments
        self.gatewayEnvironment = gatewayEnvironment
        state = Mutex((nil, [:]))
    }

    /// Starts a gateway (with `gatewayArguments`, and `gatewayEnvironment` added to its environment) and `nodes`
    /// nodes joined to it (each with `nodeArguments`).
    public static func start(
        nodes: Int, label: String = "cluster", nodeArguments: [String] = [], gatewayArguments: [String] = [],
        gatewayEnvironment: [String: String] = [:]
    ) async throws -> TestCluster {
        let cluster = TestCluster(
            folder: TemporaryDirectory(label), nodeArguments: nodeArguments, gatewayArguments: gatewayArguments,
            gatewayEnvironment: gatewayEnvironment)
        do {
            try await cluster.startGateway()
            for number in 1...max(nodes, 1) where nodes > 0 { try await cluster.startNode(number) }
        } catch {
            await cluster.stop()
            throw error
        }
        return cluster
    }

    /// The gateway running now.
    public var gateway: ServerProcess {
        get throws {
            guard let gateway = state.withLock({ $0.gateway }) else {
                throw ChildProcess.Failure(description: "the test cluster's gateway is not running")
            }
            return gateway
        }
    }

    /// Node `number` (from 1), when it runs.
    public func node(_ number: Int) throws -> ServerProcess {
        guard let node = state.withLock({ $0.nodes[number] }) else {
            throw ChildProcess.Failure(description: "node\(number) of the test cluster is not running")
        }
        return node
    }

    /// The running nodes, by number.
    public var nodes: [ServerProcess] {
        state.withLock { state in state.nodes.sorted { $0.key < $1.key }.map(\.value) }
    }

    /// The data folder of node `number`.
    public func nodeFolder(_ number: Int) -> String { folder.child("node\(number)") }

    /// Starts (or starts again) the gateway on its folder; `rpcPort` keeps a port nodes already know.
    public func startGateway(rpcPort: Int? = nil, arguments: [String] = []) async throws {
        let port = rpcPort.map { ["--rpc-port", "\($0)"] } ?? []
        let gateway = try await ServerProcess.gateway(
            dataDirectory: folder.child("gateway"), arguments: port + gatewayArguments + arguments,
            environment: gatewayEnvironment)
        state.withLock { $0.gateway = gateway }
    }

    /// The arguments `durable` starts node `number` with (joined to the gateway running now).
    public func nodeCommandLine(_ number: Int, arguments: [String] = []) throws -> [String] {
        [
            "node", "--port", "0", "--data", nodeFolder(number), "--log-level", "warning", "--node-id", "node\(number)",
            "--gateway", "127.0.0.1:\(try gateway.port)",
        ] + nodeArguments + arguments
    }

    /// Starts (or starts again) node `number` on its folder, joined to the gateway.
    public func startNode(_ number: Int, arguments: [String] = []) async throws {
        let node = try await ServerProcess.launch(
            nodeCommandLine(number, arguments: arguments), dataDirectory: nodeFolder(number))
        state.withLock { $0.nodes[number] = node }
    }

    /// Kills node `number` with SIGKILL.
    public func crashNode(_ number: Int) async throws {
        let node = try node(number)
        await node.crash()
        state.withLock { _ = $0.nodes.removeValue(forKey: number) }
    }

    /// Stops node `number` with SIGTERM; returns its exit status.
    @discardableResult
    public func stopNode(_ number: Int) async throws -> Int32 {
        let node = try node(number)
        let status = await node.stop()
        state.withLock { _ = $0.nodes.removeValue(forKey: number) }
        return status
    }

    /// Kills the gateway with SIGKILL.
    public func crashGateway() async throws {
        let current = try gateway
        await current.crash()
        state.withLock { $0.gateway = nil }
    }

    /// Stops the gateway with SIGTERM; returns its exit status.
    @discardableResult
    public func stopGateway() async throws -> Int32 {
        let current = try gateway
        let status = await current.stop()
        state.withLock { $0.gateway = nil }
        return status
    }

    /// Stops every process with SIGTERM (nodes first); returns their exit statuses, gateway last.
    @discardableResult
    public func stop() async -> [Int32] {
        let (gateway, nodes) = state.withLock { state in
            defer { state = (nil, [:]) }
            return (state.gateway, state.nodes.sorted { $0.key < $1.key }.map(\.value))
        }
        var statuses: [Int32] = []
        for node in nodes { statuses.append(await node.stop()) }
        if let gateway { statuses.append(await gateway.stop()) }
        return statuses
    }
}

/// Runs `body` with a fresh ``TestCluster`` and stops it afterwards, also when `body` throws or is cancelled;
/// expects every process to exit 0 when `body` returned normally.
public func withTestCluster<T>(
    nodes: Int, label: String = "cluster", nodeArguments: [String] = [], gatewayArguments: [String] = [],
    gatewayEnvironment: [String: String] = [:], _ body: (TestCluster) async throws -> T
) async throws -> T {
    let cluster = try await TestCluster.start(
        nodes: nodes, label: label, nodeArguments: nodeArguments, gatewayArguments: gatewayArguments,
        gatewayEnvironment: gatewayEnvironment)
    let value: T
    do {
        value = try await body(cluster)
    } catch {
        await cluster.stop()
        throw error
    }
    let statuses = await cluster.stop()
    guard statuses.allSatisfy({ $0 == 0 }) else {
        throw ChildProcess.Failure(description: "the cluster did not stop cleanly: exit statuses \(statuses)")
    }
    return value
}
