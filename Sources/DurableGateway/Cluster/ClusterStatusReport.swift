import DurableObjects
import DurableProtocol
import DurableWire

/// Answers `Admin/ClusterStatus`: the cluster store's view (etcd members, live gateways, node leases) with each
/// node's slots, and what each node that answers says of its objects in memory.
struct ClusterStatusReport: Sendable {
    let cluster: any ClusterStore
    let links: NodeLinks
    /// This gateway's session.
    let session: String

    /// How long a node may take to answer its stats.
    static let nodeTimeout: Duration = .seconds(5)

    func report() async -> Durable_V1_ClusterStatusResponse {
        let description = await cluster.describe()
        let placement = cluster.placement
        var response = Durable_V1_ClusterStatusResponse()
        response.store = description.kind
        response.registryRevision = cluster.registry.state.revision ?? 0
        response.etcdMembers = description.etcdMembers.map { member in
            .with {
                $0.endpoint = member.endpoint
                switch member.status {
                case .success(let status):
                    $0.memberID = status.memberID
                    $0.leader = status.isLeader
                case .failure(let error):
                    $0.error = error.message
                }
            }
        }
        response.gateways = cluster.liveGateways.sorted { $0.key < $1.key }.map { session, address in
            .with {
                $0.session = session
                $0.address = address
                $0.answering = session == self.session
            }
        }
        var assigned = 0
        for (nodeID, address) in placement.nodes.sorted(by: { $0.key < $1.key }) {
            var node = Durable_V1_NodeStatus()
            node.nodeID = nodeID
            node.address = address
            node.slots = UInt32(placement.slots(of: nodeID).count)
            assigned += Int(node.slots)
            let lease = description.leases[nodeID]
            node.leaseRemainingSeconds = lease?.remaining ?? -1
            node.leaseTtlSeconds = lease?.granted ?? -1
            let live = description.liveNodes.map { $0.contains(nodeID) }
            if live == false {
                node.state = "dead"
            } else {
                do {
                    let stats: Durable_V1_StatsResponse = try await links.node(nodeID).call(
                        Methods.stats, Durable_V1_StatsRequest(), timeout: Self.nodeTimeout)
                    node.activeObjects = stats.activeObjects
                    node.state = "live"
                } catch {
                    node.error = (error as? RPCError)?.message ?? (error as? DurableObjectError)?.message ?? "\(error)"
                    node.state = live == true ? "live" : "unreachable"
                }
            }
            response.nodes.append(node)
        }
        response.unassignedSlots = UInt32(max(0, PlacementEpochs.slotCount - assigned))
        response.replication = description.replication.sorted { $0.nodeID < $1.nodeID }.map { node in
            .with {
                $0.nodeID = node.nodeID
                switch node.role {
                case .primary(let term):
                    $0.role = "primary"
                    $0.term = term
                    // A record of an earlier term is this node's from before it was last replaced: nothing yet.
                    if let record = node.record, record.term == term {
                        $0.partner = record.standby
                        $0.state = record.inStep ? "in step" : "running alone"
                    }
                case .standby(let primary, let term):
                    $0.role = "standby"
                    $0.term = term
                    $0.partner = primary
                }
            }
        }
        return response
    }
}
