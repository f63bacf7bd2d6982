import DurableEtcd
import DurableGateway
import DurableObjects
import Foundation
import Logging
import TestSupport
import Testing

/// The placement kept in etcd (a real member started by the test), as two gateways share it: one owner per slot
/// whatever the race, new slots only on live nodes, node identities checked across gateways.
@Suite("Placement in etcd (a real etcd member)")
struct EtcdPlacementStoreTests {
    private static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    /// Runs `body` with two stores ("two gateways") on one fresh etcd member.
    private func withTwoGateways(
        _ body: (EtcdClient, EtcdPlacementStore, EtcdPlacementStore) async throws -> Void
    ) async throws {
        let folder = TemporaryDirectory("etcd-placement")
        let member = try await EtcdProcess.start(dataDirectory: folder.child("member"))
        let client = try EtcdClient(endpoints: [member.clientURL], requestTimeout: .seconds(30))
        let first = try await EtcdPlacementStore.open(client: client, logger: Self.logger)
        let second = try await EtcdPlacementStore.open(client: client, logger: Self.logger)
        do {
            try await body(client, first, second)
        } catch {
            first.close()
            second.close()
            await client.close()
            try await member.stop()
            throw error
        }
        first.close()
        second.close()
        await client.close()
        try await member.stop()
    }

    /// Registers `nodeID` on `store` and keeps it alive under a lease; returns the lease.
    @discardableResult
    private func join(_ nodeID: String, _ store: EtcdPlacementStore, _ client: EtcdClient) async throws -> Int64 {
        _ = try await store.register(
            nodeID: nodeID, address: "127.0.0.1:\(nodeID.count)", databaseIdentity: "db-\(nodeID)",
            replacingLostNode: false)
        let (lease, _) = try await client.grantLease(ttl: 60)
        try await store.announceMember(nodeID: nodeID, address: "127.0.0.1:\(nodeID.count)", lease: lease)
        return lease
    }

    @Test("two gateways claiming the same new slots at once record one owner per slot, and both route to it")
    func oneOwnerPerSlot() async throws {
        try await withTwoGateways { client, first, second in
            try await join("node-1", first, client)
            try await join("node-2", first, client)
            #expect(
                await eventually { second.liveNodes == ["node-1", "node-2"] }, "the second learns through its watch")
            let slots = (UInt16(0)..<64).map { $0 * 61 }
            let results = try await withThrowingTaskGroup(of: (UInt16, SlotAssignment, SlotAssignment).self) {
                group in
                for slot in slots {
                    group.addTask {
                        async let a = Self.claim(slot, on: first)
                        async let b = Self.claim(slot, on: second)
                        return (slot, try await a, try await b)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for (slot, fromFirst, fromSecond) in results {
                #expect(fromFirst == fromSecond, "slot \(slot)")
                #expect(first.assignment(of: slot) == fromFirst)
                #expect(await eventually { second.assignment(of: slot) == fromFirst })
            }
            let stored = try await client.get(prefix: Array("/durable/default/slots/".utf8)).values
            #expect(stored.count == slots.count)
            #expect(stored.allSatisfy { $0.version == 1 }, "every slot record was written once")
            let owners = Dictionary(grouping: results, by: { $0.1.nodeID }).mapValues(\.count)
            #expect(owners.keys.sorted() == ["node-1", "node-2"], "both nodes took slots: \(owners)")
        }
    }

    /// Claims `slot` on `store` as the router does: reserve, then record.
    private static func claim(_ slot: UInt16, on store: EtcdPlacementStore) async throws -> SlotAssignment {
        let (assignment, isNew) = try store.owner(of: slot)
        return isNew ? try await store.record(slot) : (store.assignment(of: slot) ?? assignment)
    }

    @Test("new slots go only to live nodes; with none alive the call is told to retry")
    func liveNodesOnly() async throws {
        try await withTwoGateways { client, first, second in
            let error = #expect(throws: DurableObjectError.self) { try first.owner(of: 1) }
            #expect(error?.code == .unavailable && error?.retryable == true)
            let lapsing = try await join("node-1", first, client)
            try await join("node-2", first, client)
            try await client.revoke(lease: lapsing)
            #expect(await eventually { first.liveNodes == ["node-2"] && second.liveNodes == ["node-2"] })
            for slot in UInt16(100)..<110 {
                #expect(try await Self.claim(slot, on: second).nodeID == "node-2")
            }
            #expect(first.nodes.keys.sorted() == ["node-1", "node-2"], "a dead node stays registered")
        }
    }

    @Test(
        "a node id keeps its database identity across gateways; another is refused naming both unless it replaces a lost node"
    )
    func identities() async throws {
        try await withTwoGateways { _, first, second throws in
            #expect(
                try await first.register(
                    nodeID: "n1", address: "127.0.0.1:1", databaseIdentity: "aaaa", replacingLostNode: false)
                    == .recorded)
            #expect(
                try await second.register(
                    nodeID: "n1", address: "127.0.0.1:2", databaseIdentity: "aaaa", replacingLostNode: false)
                    == .matched)
            let refusal = await #expect(throws: DurableObjectError.self) {
                try await second.register(
                    nodeID: "n1", address: "127.0.0.1:3", databaseIdentity: "bbbb", replacingLostNode: false)
            }
            #expect(refusal?.code == .failedPrecondition)
            #expect(refusal?.message.contains("bbbb") == true && refusal?.message.contains("aaaa") == true)
            #expect(await eventually { first.nodes["n1"] == "127.0.0.1:2" }, "the refused address was not recorded")
            #expect(
                try await second.register(
                    nodeID: "n1", address: "127.0.0.1:4", databaseIdentity: "bbbb", replacingLostNode: true)
                    == .replaced(lost: "aaaa"))
            #expect(await eventually { first.databaseIdentity(of: "n1") == "bbbb" })
        }
    }
}
