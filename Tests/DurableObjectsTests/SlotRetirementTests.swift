@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import Foundation
import TestSupport
import Testing

/// A slot retired on its old owner during a move: none of its objects runs there and none of its alarms fires (they
/// moved with the slot's rows); given back (the move undone), its alarms are scheduled again and fire once.
extension AlarmTests {
    @Test("a retired slot runs no object and fires no alarm; given back, its alarm fires once, after the return")
    func retiredSlotHoldsItsAlarms() async throws {
        try await withAlarmRuntime { runtime in
            let stub = try runtime.namespace("ALARMS").getByName("retiring")
            let tag = "retired-\(UUID().uuidString)"
            #expect(try await stub.text("/set?in=300&tag=\(tag)") == "ok")
            let slot = PlacementEpochs.slot(of: stub.id)
            let engine = try runtime.runtime
            await engine.assignSlots([(slot: slot, epoch: 1, retired: true)])
            #expect(engine.placement.servingEpoch(ofSlot: slot) == nil)

            let refused = await #expect(throws: DurableObjectError.self) { try await stub.text("/get") }
            #expect(refused?.retryable == true, "a call to a retired slot is retryable: it goes to the new owner")
            #expect(refused?.message == "Slot \(slot) of this node is handed to another node; call again shortly.")
            // The alarm comes due while the slot is retired: the scheduler hands it over and it is held back.
            #expect(await eventually { engine.scheduledAlarmCount == 0 })

            let givenBack = Date()
            await engine.assignSlots([(slot: slot, epoch: 1, retired: false)])
            #expect(await eventually { Board.entries(tag + "-times").count == 1 })
            let ranAt = try #require(Double(Board.entries(tag + "-times")[0]))
            #expect(ranAt >= givenBack.timeIntervalSince1970, "the alarm ran only once the slot was given back")
            #expect(try await stub.text("/get") == "none")
            #expect(Board.entries(tag).count == 1, "fired once")
        }
    }
}
