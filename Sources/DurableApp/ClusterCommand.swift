import ArgumentParser
import DurableClient
import DurableWire
import Foundation

/// `durable cluster`: the cluster as a whole (admin token).
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Inspect the cluster as a whole (read-only; needs the admin token).",
        subcommands: [ClusterStatusCommand.self]
    )
}

/// `durable cluster status`: gateways, nodes (live or dead, their leases, slots and objects) and etcd members.
struct ClusterStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Show the cluster's gateways, nodes (live or dead, lease, slots, objects in memory) and etcd members.",
        discussion: """
            The gateway that answers reports what its cluster store knows (etcd, or its own database) and asks each \
            node for its objects in memory. A node is dead once its lease expired (with etcd); without etcd, a node \
            that does not answer is shown as unreachable. The command fails when a registered node is not live, or \
            an etcd member does not answer, so scripts can use it as a check.
            """
    )

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func run() async throws {
        let status = try await withAdminConnection(admin) { connection in
            try Durable_V1_ClusterStatusResponse(
                serializedBytes: try await connection.call(
                    Methods.adminClusterStatus, try Durable_V1_ClusterStatusRequest().serializedBytes()))
        }
        switch format {
        case .table: printTables(status)
        case .json: try printJSON(Self.json(status))
        }
        let unwell = status.nodes.filter { $0.state != "live" }.map(\.nodeID)
        let silentMembers = status.etcdMembers.filter { !$0.error.isEmpty }.map(\.endpoint)
        let alone = status.replication.filter { $0.state == "running alone" }.map(\.nodeID)
        if !unwell.isEmpty || !silentMembers.isEmpty || !alone.isEmpty {
            let parts =
                (unwell.isEmpty ? [] : ["node(s) not live: \(unwell.joined(separator: ", "))"])
                + (silentMembers.isEmpty
                    ? [] : ["etcd member(s) not answering: \(silentMembers.joined(separator: ", "))"])
                + (alone.isEmpty ? [] : ["node(s) running without their standby: \(alone.joined(separator: ", "))"])
            throw CommandError("the cluster is degraded: " + parts.joined(separator: "; "))
        }
    }

    private func printTables(_ status: Durable_V1_ClusterStatusResponse) {
        print("cluster store: \(status.store), registry revision \(status.registryRevision)")
        if !status.etcdMembers.isEmpty {
            print("")
            printTable(
                ["ETCD MEMBER", "ID", "ROLE"],
                status.etcdMembers.map { member in
                    [
                        member.endpoint, member.memberID.isEmpty ? "-" : member.memberID,
                        member.error.isEmpty ? (member.leader ? "leader" : "follower") : "down: \(member.error)",
                    ]
                })
        }
        print("")
        printTable(
            ["GATEWAY", "SESSION", ""],
            status.gateways.map { [$0.address, $0.session, $0.answering ? "(answering)" : ""] })
        print("")
        printTable(
            ["NODE", "ADDRESS", "STATE", "LEASE", "SLOTS", "OBJECTS IN MEMORY"],
            status.nodes.map { node in
                [
                    node.nodeID, node.address, node.state,
                    node.leaseTtlSeconds < 0 ? "-" : "\(node.leaseRemainingSeconds)/\(node.leaseTtlSeconds) s",
                    "\(node.slots)", node.error.isEmpty ? "\(node.activeObjects)" : "- (\(node.error))",
                ]
            })
        print("\(4096 - Int(status.unassignedSlots)) of 4096 slots assigned")
        if !status.replication.isEmpty {
            print("")
            printTable(
                ["REPLICATED NODE", "ROLE", "TERM", "OF", "STANDBY"],
                status.replication.map { node in
                    node.role == "primary"
                        ? [
                            node.nodeID, "primary", "\(node.term)", "-",
                            node.partner.isEmpty ? "-" : "\(node.partner) (\(node.state))",
                        ]
                        : [node.nodeID, "standby", "\(node.term)", node.partner, "-"]
                })
        }
    }

    static func json(_ status: Durable_V1_ClusterStatusResponse) -> [String: Any] {
        [
            "store": status.store,
            "registryRevision": status.registryRevision,
            "unassignedSlots": status.unassignedSlots,
            "etcdMembers": status.etcdMembers.map { member -> [String: Any] in
                var entry: [String: Any] = ["endpoint": member.endpoint, "leader": member.leader]
                if !member.memberID.isEmpty { entry["id"] = member.memberID }
                if !member.error.isEmpty { entry["error"] = member.error }
                return entry
            },
            "gateways": status.gateways.map {
                ["address": $0.address, "session": $0.session, "answering": $0.answering] as [String: Any]
            },
            "nodes": status.nodes.map { node -> [String: Any] in
                var entry: [String: Any] = [
                    "id": node.nodeID, "address": node.address, "state": node.state, "slots": node.slots,
                    "activeObjects": node.activeObjects,
                ]
                if node.leaseTtlSeconds >= 0 {
                    entry["leaseRemainingSeconds"] = node.leaseRemainingSeconds
                    entry["leaseTTLSeconds"] = node.leaseTtlSeconds
                }
                if !node.error.isEmpty { entry["error"] = node.error }
                return entry
            },
            "replication": status.replication.map { node -> [String: Any] in
                var entry: [String: Any] = ["id": node.nodeID, "role": node.role, "term": node.term]
                if !node.partner.isEmpty { entry[node.role == "primary" ? "standby" : "primary"] = node.partner }
                if !node.state.isEmpty { entry["state"] = node.state }
                return entry
            },
        ]
    }
}
