import DurableGateway
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
