import DurableClient
import DurableObjects
import DurableWire
import Logging
import Synchronization

/// The gateway's connections to its nodes: one `DurableClient` (a small pool of connections) per node address, with
/// the metrics of the calls forwarded to that node. A node that registers again at a new address gets a new client.
final class NodeLinks: Sendable {
    /// The way to one node.
    struct Link: Sendable {
        /// The client of the node's RPC port.
        let client: DurableClient
        /// The metrics of the calls forwarded to the node.
        let calls: CallMetrics
    }

    private let placement: PlacementTable
    private let credentials: RPCKey?
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let links = Mutex<[String: (address: String, link: Link)]>([:])

    /// - Parameter credentials: the cluster secret the gateway proves to its nodes.
    init(placement: PlacementTable, credentials: RPCKey?, metrics: GatewayMetrics, logger: Logger) {
        self.placement = placement
        self.credentials = credentials
        self.metrics = metrics
        self.logger = logger
    }

    /// The link to the registered node `nodeID`.
    ///
    /// - Throws: `UNAVAILABLE` when no node of that id is registered.
    func link(to nodeID: String) throws -> Link {
        guard let address = placement.nodes[nodeID] else {
            throw RPCError.unavailable("Node \(nodeID) is not registered.")
        }
        return links.withLock { links in
            if let existing = links[nodeID], existing.address == address { return existing.link }
            let parts = address.split(separator: ":")
            let client = DurableClient(
                host: String(parts.first ?? "127.0.0.1"), port: Int(parts.last ?? "0") ?? 0, connections: 2,
                credentials: credentials, logger: logger)
            let link = Link(client: client, calls: links[nodeID]?.link.calls ?? metrics.forwarding(to: nodeID))
            links[nodeID] = (address, link)
            return link
        }
    }

    /// The client of the registered node `nodeID`.
    func client(for nodeID: String) throws -> DurableClient {
        try link(to: nodeID).client
    }

    /// Closes every connection.
    func closeAll() async {
        let all = links.withLock { links -> [DurableClient] in
            defer { links.removeAll() }
            return links.values.map(\.link.client)
        }
        for client in all { await client.close() }
    }
}

/// Runs a call to a node, passing the node's status on unchanged (as the ``RPCError`` the gateway answers with).
func passingNodeStatus<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as DurableObjectError {
        throw RPCError(error)
    }
}
