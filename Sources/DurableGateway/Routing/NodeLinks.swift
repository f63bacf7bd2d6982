import DurableClient
import DurableObjects
import DurableWire
import Logging
import Synchronization

/// The gateway's links to its nodes, with the metrics of the calls forwarded to each: a ``SocketNodeLink`` (a small
/// pool of connections) per node address, or the ``InProcessNodeLink`` of a node that runs in the gateway's process.
/// A node that registers again at a new address gets a new link.
final class NodeLinks: Sendable {
    /// The way to one node.
    struct Link: Sendable {
        /// The node's RPC methods.
        let node: any NodeLink
        /// The metrics of the calls forwarded to the node.
        let calls: CallMetrics
    }

    private struct Entry {
        var address: String
        var link: Link
    }

    private let placement: any PlacementStore
    private let credentials: RPCKey?
    private let tls: RPCClientTLS?
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let links = Mutex<[String: Entry]>([:])
    /// The nodes in this process, by node id, with the address they registered.
    private let inProcess = Mutex<[String: (address: String, link: InProcessNodeLink)]>([:])

    /// - Parameter credentials: the cluster secret the gateway proves to its nodes.
    /// - Parameter tls: how the gateway reaches its nodes over TLS (its certificate, and the cluster's CA);
    ///   `nil` for plaintext.
    init(
        placement: any PlacementStore, credentials: RPCKey?, tls: RPCClientTLS?, metrics: GatewayMetrics,
        logger: Logger
    ) {
        self.placement = placement
        self.credentials = credentials
        self.tls = tls
        self.metrics = metrics
        self.logger = logger
    }

    /// Reaches node `nodeID`, registered at `address`, through `link` instead of its port (`nil`: over TCP again).
    func use(_ link: InProcessNodeLink?, for nodeID: String, at address: String) {
        inProcess.withLock { $0[nodeID] = link.map { (address, $0) } }
        links.withLock { _ = $0.removeValue(forKey: nodeID) }
    }

    /// The link to the registered node `nodeID`.
    ///
    /// - Throws: `UNAVAILABLE` when no node of that id is registered.
    func link(to nodeID: String) throws -> Link {
        guard let address = placement.nodes[nodeID] else {
            throw RPCError.unavailable("Node \(nodeID) is not registered.")
        }
        let (link, replaced) = links.withLock { links -> (Link, (any NodeLink)?) in
            if let existing = links[nodeID], existing.address == address { return (existing.link, nil) }
            let node: any NodeLink
            if let local = inProcess.withLock({ $0[nodeID] }), local.address == address {
                node = local.link
            } else {
                let parts = address.split(separator: ":")
                node = SocketNodeLink(
                    client: DurableClient(
                        host: String(parts.first ?? "127.0.0.1"), port: Int(parts.last ?? "0") ?? 0, connections: 2,
                        credentials: credentials, tls: tls, logger: logger))
            }
            let link = Link(node: node, calls: links[nodeID]?.link.calls ?? metrics.forwarding(to: nodeID))
            let replaced = links[nodeID]?.link.node
            links[nodeID] = Entry(address: address, link: link)
            return (link, replaced)
        }
        if let replaced { Task { await replaced.close() } }
        return link
    }

    /// The node's RPC methods, for the registered node `nodeID`.
    func node(_ nodeID: String) throws -> any NodeLink {
        try link(to: nodeID).node
    }

    /// Closes every connection.
    func closeAll() async {
        let all = links.withLock { links -> [any NodeLink] in
            defer { links.removeAll() }
            return links.values.map(\.link.node)
        }
        for link in all { await link.close() }
    }
}
