import DurableGateway
import DurableStorage
import TestSupport
import Testing

/// The rebalance plan: from the node that owns the most slots to the one that owns the fewest, until they differ by
/// at most one, never more moves than the round allows.
@Suite("Slot balance planner")
struct SlotBalancePlannerTests {
    /// Applies `moves` to `owned`, checking each move takes a slot from its owner.
    private func apply(_ moves: [SlotBalancePlanner.Move], to owned: [String: [UInt16]]) -> [String: [UInt16]] {
        var owned = owned
        for move in moves {
            #expect(owned[move.from]?.contains(move.slot) == true, "\(move) takes a slot its owner has")
            owned[move.from]?.removeAll { $0 == move.slot }
            owned[move.to, default: []].append(move.slot)
        }
        return owned
    }

    @Test("a node added to three full ones ends with its share: every node within one of the others")
    func newNodeGetsItsShare() {
        let slots = Array(UInt16(0)..<4055)
        let owned: [String: [UInt16]] = [
            "node1": Array(slots[0..<1352]), "node2": Array(slots[1352..<2704]), "node3": Array(slots[2704...]),
            "node4": [],
        ]
        let plan = SlotBalancePlanner.plan(slotsByNode: owned, limit: 10_000)
        let after = apply(plan, to: owned)
        let counts = after.values.map(\.count)
        #expect(counts.max()! - counts.min()! <= 1, "\(after.mapValues(\.count))")
        #expect(after.values.allSatisfy { (1024 - 41...1024 + 41).contains($0.count) })
        #expect(plan.allSatisfy { $0.to == "node4" }, "only the new node receives slots")
        #expect(plan.count == 1014 || plan.count == 1013, "the fewest moves: \(plan.count)")
        #expect(Set(plan.map(\.slot)).count == plan.count, "no slot moves twice")
        #expect(SlotBalancePlanner.plan(slotsByNode: owned, limit: 10_000) == plan, "the same plan for the same input")
    }

    @Test("a round moves at most its limit; the next rounds go on from there")
    func limitPerRound() {
        var owned: [String: [UInt16]] = ["a": Array(0..<100), "b": []]
        var rounds = 0
        while case let plan = SlotBalancePlanner.plan(slotsByNode: owned, limit: 10), !plan.isEmpty {
            #expect(plan.count <= 10)
            owned = apply(plan, to: owned)
            rounds += 1
        }
        #expect(rounds == 5 && owned["a"]?.count == 50 && owned["b"]?.count == 50)
    }

    @Test("nothing to do: balanced nodes, one node, or a limit of 0")
    func nothingToDo() {
        #expect(SlotBalancePlanner.plan(slotsByNode: ["a": [1, 2], "b": [3]], limit: 10).isEmpty)
        #expect(SlotBalancePlanner.plan(slotsByNode: ["a": Array(0..<50)], limit: 10).isEmpty)
        #expect(SlotBalancePlanner.plan(slotsByNode: ["a": Array(0..<50), "b": []], limit: 0).isEmpty)
    }
}

/// New slots go to the node with the fewest slots and the least stored data.
@Suite("New slot owner")
struct NewSlotOwnerTests {
    @Test("alike nodes: the one with the fewest slots; a node that stores much more gets new slots only later")
    func slotsAndBytes() {
        let nodes = ["a", "b"]
        #expect(NewSlotOwner.choose(among: nodes, slots: ["a": 10, "b": 11], storedBytes: [:]) == "a")
        #expect(
            NewSlotOwner.choose(among: nodes, slots: ["a": 10, "b": 10], storedBytes: [:]) == "a", "ties: lower id")
        // a stores ten times what b does: b takes new slots although it owns more.
        let heavy: [String: UInt64] = ["a": 10_000_000, "b": 1_000_000]
        #expect(NewSlotOwner.choose(among: nodes, slots: ["a": 100, "b": 110], storedBytes: heavy) == "b")
        // Until b owns so many more slots that its share of the slots outweighs a's share of the data.
        #expect(NewSlotOwner.choose(among: nodes, slots: ["a": 10, "b": 300], storedBytes: heavy) == "a")
        #expect(NewSlotOwner.choose(among: [String](), slots: [:], storedBytes: [:]) == nil)
    }

    @Test("the placement table gives new slots by stored bytes as the nodes report them")
    func placementTableUsesStoredBytes() async throws {
        let folder = TemporaryDirectory("placement-bytes")
        let database = try Database(path: folder.path)
        defer { database.close() }
        let table = try PlacementTable(database: database)
        try table.register(nodeID: "a", address: "127.0.0.1:1")
        try table.register(nodeID: "b", address: "127.0.0.1:2")
        table.recordStoredBytes(["a": 50_000_000, "b": 1_000])
        var owners: [String: Int] = [:]
        for slot in UInt16(0)..<20 {
            let (assignment, _) = try table.owner(of: slot)
            try await table.record(slot)
            owners[assignment.nodeID, default: 0] += 1
        }
        #expect(
            (owners["b"] ?? 0) > (owners["a"] ?? 0), "the node with less data took more of the new slots: \(owners)")
    }
}
