import DurableClient
import DurableObjects
import DurableWire
import Logging

/// A node joining a gateway.
enum GatewayRegistration {
    /// Registers the node, retrying for about ten seconds while the gateway is unreachable. Returns whether it
    /// joined.
    static func register(
        gateway: String, nodeID: String, address: String, credentials: RPCKey?, logger: Logger
    ) async -> Bool {
        let parts = gateway.split(separator: ":")
        guard parts.count == 2, let port = Int(parts[1]) else {
            logger.error("--gateway must be host:port, not '\(gateway)'")
            return false
        }
        let client = DurableClient(
            host: String(parts[0]), port: port, connections: 1, credentials: credentials, logger: logger)
        defer { Task { await client.close() } }
        for attempt in 1...100 {
            do {
                let _: Durable_V1_RegisterNodeResponse = try await client.call(
                    Methods.registerNode,
                    Durable_V1_RegisterNodeRequest.with {
                        $0.nodeID = nodeID
                        $0.address = address
                    })
                logger.info("joined the gateway", metadata: ["gateway": "\(gateway)", "attempts": "\(attempt)"])
                return true
            } catch let error as DurableObjectError where !error.retryable {
                // A refused key or a refused registration does not get better by asking again.
                logger.error("the gateway refused this node", metadata: ["error": "\(error.message)"])
                return false
            } catch {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        return false
    }
}
