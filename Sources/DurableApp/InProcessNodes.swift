import DurableGateway
import DurableNode

/// Storage nodes that run in the gateway's process (`durable dev`, and the in-process clusters of tests).
public enum InProcessNodes {
    /// Points `node`'s calls to other objects and its socket frames at `gateway`, starts it, and registers it with
    /// the gateway, which then calls it in-process (`InProcessNodeLink`) instead of through its port; checks that
    /// the gateway's registry is the one the node joined before.
    ///
    /// - Parameters:
    ///   - node: a node not started yet, of this process.
    ///   - gateway: the gateway of this process, started.
    ///   - host: the address the node's port is bound to (its registered address).
    ///   - callingInProcess: `false` to have the gateway call the node through its port, as it calls nodes in other
    ///     processes (to compare the two).
    /// - Throws: the gateway's refusal (another database for the node id, another registry), or a start failure.
    public static func join(
        _ node: StorageNode, to gateway: Gateway, host: String = "127.0.0.1", callingInProcess: Bool = true
    ) async throws {
        try node.routeObjectCalls(through: gateway.objectTransport)
        node.sendWebSocketFrames(through: gateway.webSockets)
        let port = try await node.start()
        let registry = try await gateway.register(
            nodeID: node.configuration.nodeID, address: "\(host):\(port)", databaseIdentity: node.databaseIdentity,
            joinedRegistry: try node.joinedRegistryIdentity,
            inProcess: callingInProcess ? InProcessNodeLink(handler: node.rpcHandler) : nil)
        try node.checkRegistry(registry)
    }
}
