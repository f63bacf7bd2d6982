import DurableObjects
import DurableObjectsTesting
import Foundation
import TestSupport
import Testing

/// Single instance under confusion (SEMANTICS §2): once a slot's placement epoch is raised, an activation made under
/// the old epoch is superseded; its writes are refused and never reach disk.
@Suite("Fencing by placement epoch")
struct FencingTests {
    @Test("a stale activation that writes after its epoch was raised gets the superseded error; nothing reaches disk")
    func staleActivationCannotWrite() async throws {
        try await withRuntime { runtime in
            let namespace = try runtime.namespace("PROBE")
            let id = namespace.idFromName(uniqueName())
            let objects = try runtime.runtime
            let slot = PlacementEpochs.slot(of: id)
            await objects.assignSlots([(slot: slot, epoch: 1)])
            let tag = uniqueName("latch")
            let stale = Task {
                try await objects.invoke(
                    namespaceID: namespace.namespaceID, id: id,
                    request: Request(url: "http://probe/wait-then-put?tag=\(tag)", method: .post, body: .text("stale")),
                    epoch: 1, deadline: nil)
            }
            // The old activation is inside its handler, suspended, when the slot moves on.
            #expect(await eventually { Board.latch(tag).waiterCount == 1 })
            await objects.assignSlots([(slot: slot, epoch: 2)])
            Board.latch(tag).open()
            let outcome = await Result { try await stale.value }
            guard case .failure(let error as DurableObjectError) = outcome else {
                Issue.record("the stale write was not refused: \(outcome)")
                return
            }
            #expect(error == .instanceInactive, "\(error)")
            // The old epoch is refused at the door too.
            await #expect(throws: DurableObjectError.self) {
                try await objects.invoke(
                    namespaceID: namespace.namespaceID, id: id, request: Request(url: "http://probe/x"), epoch: 1,
                    deadline: nil)
            }
            // The current instance finds nothing written, in memory or, after an eviction, on disk.
            let current = try await objects.invoke(
                namespaceID: namespace.namespaceID, id: id, request: Request(url: "http://probe/x"), epoch: 2,
                deadline: nil)
            #expect(current.text() == "none")
            #expect(await eventually { objects.evict(namespaceID: namespace.namespaceID, id: id) })
            let reloaded = try await objects.invoke(
                namespaceID: namespace.namespaceID, id: id, request: Request(url: "http://probe/x"), epoch: 2,
                deadline: nil)
            #expect(reloaded.text() == "none")
        }
    }

    @Test("an epoch raise cannot fall between the fence's check and the write: it waits for a write already checked")
    func raiseWaitsForCheckedWrite() async throws {
        try await withRuntime { runtime in
            let namespace = try runtime.namespace("PROBE")
            let id = namespace.idFromName(uniqueName())
            let objects = try runtime.runtime
            let slot = PlacementEpochs.slot(of: id)
            await objects.assignSlots([(slot: slot, epoch: 1)])
            // The flush passes the fence, then waits on the commit thread (the held write).
            let gate = try runtime.holdStorageWrites()
            let write = Task {
                try await objects.invoke(
                    namespaceID: namespace.namespaceID, id: id,
                    request: Request(url: "http://probe/put", method: .post, body: .text("checked")), epoch: 1,
                    deadline: nil)
            }
            #expect(await eventually { gate.heldCount == 1 }, "the write was checked and is held")
            let order = Recorder<String>()
            let raise = Task {
                await objects.assignSlots([(slot: slot, epoch: 2)])
                order.append("raised")
            }
            #expect(
                await eventually { objects.committer.exclusiveWorkWaiting == 1 || !order.values.isEmpty },
                "the raise was asked for")
            order.append("write released")
            gate.open()
            await raise.value
            #expect(order.values == ["write released", "raised"], "the raise waited for the checked write")
            // The caller was told the write succeeded, and it is on disk for the new activation.
            #expect(try await write.value.text() == "stored")
            let current = try await objects.invoke(
                namespaceID: namespace.namespaceID, id: id, request: Request(url: "http://probe/x"), epoch: 2,
                deadline: nil)
            #expect(current.text() == "checked")
        }
    }
}
