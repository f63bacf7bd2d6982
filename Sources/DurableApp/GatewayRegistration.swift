import DurableClient
import DurableNode
import DurableObjects
import DurableWire
import Logging

/// A node joining a gateway.
enum GatewayRegistration {
    /// How joining went.
    enum Outcome: Equatable {
        /// The gateway took the node, and its registry is the one the node joined before (or the node's first).
        case joined
        /// The gateway refused the node, or the node refused the gateway: asking again would not help.
        case refused(String)
        /// The gateway did not answer in time.
        case unreachable
    }

    /// Registers `node` (with its database identity) through `client` (the first of the gateways it knows that
    /// answers), retrying for about ten seconds while none does, and checks the registry the gateway answers with
    /// against the one the node joined. Every gateway of a cluster shares the registration (through etcd).
    static func register(
        through client: DurableClient, node: StorageNode, address: String, replacingLostNode: Bool, logger: Logger
    ) async -> Outcome {
        let joined: String?
        do {
            joined = try node.joinedRegistryIdentity
        } catch {
            return .refused("the node's database cannot be read: \(error)")
        }
        let request = Durable_V1_RegisterNodeRequest.with {
            $0.nodeID = node.configuration.nodeID
            $0.address = address
            $0.databaseIdentity = node.databaseIdentity
            $0.replaceLostNode = replacingLostNode
            $0.registryIdentity = joined ?? ""
        }
        for attempt in 1...100 {
            do {
                let response: Durable_V1_RegisterNodeResponse = try await client.call(Methods.registerNode, request)
                try node.checkRegistry(response.registryIdentity)
                logger.info(
                    "joined the gateway", metadata: ["gateway": "\(client.endpoint)", "attempts": "\(attempt)"])
                return .joined
            } catch let error as DurableObjectError where !error.retryable {
                // A refused key or a refused registration does not get better by asking again.
                return .refused(error.message)
            } catch {
                try? await Task.sleep(for: .milliseconds(100))  // the gateway may still be starting
            }
        }
        return .unreachable
    }
}
