import DurableClient
import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Logging

/// Admits nodes to the cluster and keeps them told: checks a registering node's database and registry identities,
/// records it in the placement table, and sends nodes the registry (namespaces, bindings, the gateway's session) and
/// their slots' epochs — when a node registers, when the gateway starts, after every publish.
final class NodeRegistrar: Sendable {
    private let registry: any RegistryStore
    private let placement: any PlacementStore
    private let links: NodeLinks
    /// The sessions of the gateways that hold client WebSockets now (every live gateway's, this one's included).
    private let liveGatewaySessions: @Sendable () -> [String]
    private let logger: Logger
    /// Called with the id of each node that registered (and was told the registry and its slots).
    private let nodeRegistered: @Sendable (String) -> Void

    init(
        registry: any RegistryStore, placement: any PlacementStore, links: NodeLinks,
        liveGatewaySessions: @escaping @Sendable () -> [String], logger: Logger,
        nodeRegistered: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.registry = registry
        self.placement = placement
        self.links = links
        self.liveGatewaySessions = liveGatewaySessions
        self.logger = logger
        self.nodeRegistered = nodeRegistered
    }

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
        let check: IdentityCheck
        do {
            check = try await placement.register(
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
        nodeRegistered(nodeID)
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
        let node = try links.node(nodeID)
        let state = registry.state
        if !dropped.isEmpty {
            let _: Durable_V1_DropNamespacesResponse = try await node.call(
                Methods.dropNamespaces, Durable_V1_DropNamespacesRequest.with { $0.namespaceIds = dropped })

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
        let _: Durable_V1_DefineNamespacesResponse = try await node.call(
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
                $0.gatewaySessions = liveGatewaySessions().sorted()
                $0.registryRevision = state.revision ?? 0
            })

        let slots = placement.slots(of: nodeID)
        if !slots.isEmpty {
            let _: Durable_V1_AssignSlotsResponse = try await node.call(
                Methods.assignSlots,
                Durable_V1_AssignSlotsRequest.with {
                    $0.assignments = slots.map { entry in
                        .with {
                            $0.slot = UInt32(entry.slot); $0.epoch = entry.epoch
                            // A slot moving away stays retired on its old owner until the move ends.
                            $0.retired = placement.assignment(of: entry.slot)?.movingTo != nil
                        }
                    }
                })

        }
    }
}
