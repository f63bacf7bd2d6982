@_spi(Testing) import DurableObjects
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
            let probe = try await FencedProbe(runtime)
            let tag = uniqueName("latch")
            let stale = Task { try await probe.call("/wait-then-put?tag=\(tag)", body: "stale", epoch: 1) }
            // The old activation is inside its handler, suspended, when the slot moves on.
            #expect(await eventually { Board.latch(tag).waiterCount == 1 })
            await probe.raise(to: 2)
            Board.latch(tag).open()
            let outcome = await Result { try await stale.value }
            guard case .failure(let error as DurableObjectError) = outcome else {
                Issue.record("the stale write was not refused: \(outcome)")
                return
            }
            #expect(error == .instanceInactive, "\(error)")
            // The old epoch is refused at the door too.
            await #expect(throws: DurableObjectError.self) { try await probe.call("/x", epoch: 1) }
            // The current instance finds nothing written, in memory or, after an eviction, on disk.
            #expect(try await probe.call("/x", epoch: 2).text() == "none")
            #expect(await eventually { probe.objects.evict(namespaceID: probe.namespaceID, id: probe.id) })
            #expect(try await probe.call("/x", epoch: 2).text() == "none")
        }
    }

    @Test("an epoch raise cannot fall between the fence's check and the write: it waits for a write already checked")
    func raiseWaitsForCheckedWrite() async throws {
        try await withRuntime { runtime in
            let probe = try await FencedProbe(runtime)
            // The flush passes the fence, then waits on the commit thread (the held write).
            let gate = try runtime.holdStorageWrites()
            let write = Task { try await probe.call("/put", body: "checked", epoch: 1) }
            #expect(await eventually { gate.heldCount == 1 }, "the write was checked and is held")
            let order = Recorder<String>()
            let raise = Task {
                await probe.raise(to: 2)
                order.append("raised")
            }
            #expect(
                await eventually { probe.objects.committer.exclusiveWorkWaiting == 1 || !order.values.isEmpty },
                "the raise was asked for")
            order.append("write released")
            gate.open()
            await raise.value
            #expect(order.values == ["write released", "raised"], "the raise waited for the checked write")
            // The caller was told the write succeeded, and it is on disk for the new activation.
            #expect(try await write.value.text() == "stored")
            #expect(try await probe.call("/x", epoch: 2).text() == "checked")
        }
    }
}

/// A probe object whose slot the runtime placed at epoch 1, called straight on the runtime with an explicit epoch
/// (as a gateway calls a node).
struct FencedProbe {
    let objects: ObjectRuntime
    let namespaceID: String
    let id: DurableObjectId
    var slot: UInt16 { PlacementEpochs.slot(of: id) }

    /// A fresh probe of `runtime`, its slot at epoch 1.
    init(_ runtime: DurableTestRuntime) async throws {
        objects = try runtime.runtime
        let namespace = try runtime.namespace("PROBE")
        namespaceID = namespace.namespaceID
        id = namespace.idFromName(uniqueName())
        await objects.assignSlots([(slot: PlacementEpochs.slot(of: id), epoch: 1)])
    }

    /// Calls the probe at `path` (a `POST` with `body`, when given) under `epoch`.
    func call(_ path: String, body: String? = nil, epoch: UInt64) async throws -> Response {
        let request =
            body.map { Request(url: "http://probe\(path)", method: .post, body: .text($0)) }
            ?? Request(url: "http://probe\(path)")
        return try await objects.invoke(namespaceID: namespaceID, id: id, request: request, epoch: epoch, deadline: nil)
    }

    /// Raises the slot's epoch.
    func raise(to epoch: UInt64) async {
        await objects.assignSlots([(slot: slot, epoch: epoch)])
    }
}
