@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import Foundation
import Synchronization
import TestSupport
import Testing

/// Serialized: some of these tests hold a storage read on the thread that runs the object (that is what a held read
/// is), and two such tests at once would hold both threads of the object executors' pool on a two-core machine.
@Suite("Consistency: coalescing, gates (SEMANTICS §4)", .serialized)
struct GateTests {
    @Test("read-your-writes, and a read issued before a write returns the old value")
    func readYourWrites() async throws {
        try await withObject { _, storage throws in
            try storage.put("k", "old")
            try await storage.sync()
            let before = try await storage.get("k", as: String.self)
            try storage.put("k", "new")
            let after = try await storage.get("k", as: String.self)
            #expect(before == "old")
            #expect(after == "new")
            try await storage.delete("k")
            #expect(try await storage.get("k", as: String.self) == nil)
        }
    }

    @Test("a read with allowConcurrency issued before a write returns the old value, even if it finishes later")
    func concurrentReadSeesIssueTime() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try state.storage.put("k", "old")
                try await state.storage.sync()
            }
            try runtime.evict(stub)  // drop the cache: the next read goes to RocksDB
            let gate = try runtime.holdStorageReads()
            let reading = Task {
                try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                    try await state.storage.get(
                        "k", as: String.self, options: StorageReadOptions(allowConcurrency: true))
                }
            }
            #expect(await eventually { gate.heldCount == 1 })
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try state.storage.put("k", "new")
                try await state.storage.sync()
            }
            gate.open()
            #expect(try await reading.value == "old")
        }
    }

    @Test(
        "writes without a suspension between them land atomically: a failed flush leaves none on disk and resets the object"
    )
    func atomicTurn() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/instance") == "1")
            try runtime.injectWriteFailure(stub)
            let error = await #expect(throws: DurableObjectError.self) {
                try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                    try state.storage.put("a", 1)
                    try state.storage.put("b", 2)
                    try state.storage.put("c", 3)
                }
            }
            #expect(error?.message == "Internal error in Durable Object storage write caused object to be reset.")
            #expect(try await stub.text("/instance") == "2", "the object was reset: the initializer ran again")
            try await runtime.restart()
            let keys = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try await state.storage.list(as: Int.self).keys
            }
            #expect(keys.isEmpty)
        }
    }

    @Test("writes of one turn are one batch; writes after a suspension are the next")
    func turnsAreBatches() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            // The first flush (a, b) succeeds; the second (c, d) fails.
            let outcome = await Result(catching: {
                try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                    try state.storage.put("a", 1)
                    try state.storage.put("b", 2)
                    try await state.storage.sync()
                    try runtime.injectWriteFailure(stub)
                    try state.storage.put("c", 3)
                    try state.storage.put("d", 4)
                }
            })
            #expect(throws: DurableObjectError.self) { try outcome.get() }
            try await runtime.restart()
            let keys = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try await state.storage.list(as: Int.self).keys
            }
            #expect(keys == ["a", "b"])
        }
    }

    @Test("a response is not delivered before its writes are durable")
    func outputGate() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let gate = try runtime.holdStorageWrites()
            let order = Recorder<String>()
            let request = Task {
                let answer = try await stub.text("/put", body: "v")
                order.append("answered")
                return answer
            }
            #expect(await eventually { gate.heldCount == 1 }, "the flush reached the committer")
            // Were the response let out at the end of the turn, it would be answered long before the test sees the
            // held flush; it must wait for the write to become durable.
            order.append("write released")
            gate.open()
            #expect(try await request.value == "stored")
            #expect(order.values == ["write released", "answered"])
        }
    }

    @Test("allowUnconfirmed lets the response leave before the write is durable")
    func allowUnconfirmed() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let gate = try runtime.holdStorageWrites()
            defer { gate.open() }
            let request = Task { try await stub.text("/put-unconfirmed", body: "v") }
            #expect(await finishes(request), "the response left while the write was still held")
            #expect(gate.heldCount == 1, "the write is still held")
        }
    }

    @Test("a request to another object waits for the caller's earlier writes to be durable")
    func outputGateOnSubrequests() async throws {
        try await withRuntime { runtime in
            let caller = try runtime.namespace("PROBE").getByName(uniqueName())
            let calleeName = uniqueName()
            let tag = uniqueName("log")
            _ = try await runtime.namespace("PROBE").getByName(calleeName).text("/instance")
            let gate = try runtime.holdStorageWrites()
            let request = Task { try await caller.text("/put-then-call?tag=\(tag)", body: calleeName) }
            #expect(await eventually { gate.heldCount == 1 })
            Board.log(tag, "write released")
            gate.open()
            #expect(try await request.value == "logged")
            #expect(
                Board.entries(tag) == ["write released", "ran called"],
                "the callee received the request before the caller's write was durable")
        }
    }

    @Test("flushes of many objects share synced writes through the group committer")
    func flushesShareSyncs() async throws {
        try await withRuntime { runtime in
            let namespace = try runtime.namespace("PROBE")
            let before = try runtime.runtime.committer.statistics
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<200 {
                    group.addTask { _ = try await namespace.getByName("shared-\(index)").text("/increment") }
                }
                try await group.waitForAll()
            }
            let after = try runtime.runtime.committer.statistics
            let batches = after.batches - before.batches
            let syncs = after.groups - before.groups
            #expect(batches == 200, "one flush per object")
            #expect(syncs < batches, "\(syncs) synced writes for \(batches) flushes")
        }
    }

    @Test("100 concurrent increments on one counter return 100 distinct values and end at 100")
    func concurrentIncrements() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let values = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<100 { group.addTask { Int(try await stub.text("/increment"))! } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(Set(values) == Set(1...100))
            #expect(try await stub.text("/count") == "100")
        }
    }

    @Test("while a storage read is in progress no other event is delivered")
    func inputGateHoldsDuringRead() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("log")
            _ = try await stub.text("/instance")
            let gate = try runtime.holdStorageReads()
            let reader = Task { try await stub.text("/read-held?tag=\(tag)") }
            #expect(await eventually { gate.heldCount == 1 })
            let other = Task { try await stub.text("/log?tag=\(tag)", body: "other") }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 1 }, "the second request waits in the queue")
            gate.open()
            _ = try await reader.value
            _ = try await other.value
            #expect(Board.entries(tag) == ["read finished", "ran other"])
        }
    }

    @Test("allowConcurrency lets other events in while the read is in progress")
    func allowConcurrencyOpensGate() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("log")
            _ = try await stub.text("/instance")
            let gate = try runtime.holdStorageReads()
            let reader = Task { try await stub.text("/read-held?tag=\(tag)", body: "allowConcurrency") }
            #expect(await eventually { gate.heldCount == 1 })
            let other = try await stub.text("/log?tag=\(tag)", body: "other")
            #expect(other == "logged", "the second request ran while the read was held")
            gate.open()
            _ = try await reader.value
            #expect(Board.entries(tag) == ["ran other", "read finished"])
        }
    }

    @Test("blockConcurrencyWhile in the initializer holds requests back until it finishes")
    func blockConcurrencyInInit() async throws {
        try await withRuntime { runtime in
            let name = uniqueName("slow-start:")
            let stub = try runtime.namespace("PROBE").getByName(name)
            let requests = (0..<3).map { _ in Task { try await stub.text("/loaded") } }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 3 }, "requests wait while the start-up runs")
            Board.latch(name).open()
            for request in requests { #expect(try await request.value == "true") }
        }
    }

    @Test("blockConcurrencyWhile in a handler holds later requests in the queue")
    func blockConcurrencyInHandler() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("block")
            let blocker = Task { try await stub.text("/block?tag=\(tag)", body: "first") }
            #expect(await eventually { Board.entries(tag) == ["ran first"] })
            let second = Task { try await stub.text("/log?tag=\(tag)", body: "second") }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 1 })
            #expect(Board.entries(tag) == ["ran first"])
            Board.latch(tag).open()
            #expect(try await blocker.value == "unblocked")
            #expect(try await second.value == "logged")
        }
    }

    @Test("the writes of a blockConcurrencyWhile body between two suspensions are one turn: one atomic batch")
    func blockConcurrencyWritesAreOneTurn() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/instance") == "1")
            let committer = try runtime.runtime.committer
            let before = committer.statistics.batches
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try await state.blockConcurrencyWhile {
                    try state.storage.put("a", 1)
                    try state.storage.put("b", 2)
                }
                try await state.storage.sync()
            }
            #expect(committer.statistics.batches - before == 1, "one flush for both writes")

            // And so they fail together: a failed flush leaves neither on disk.
            try runtime.injectWriteFailure(stub)
            await #expect(throws: DurableObjectError.self) {
                try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                    try await state.blockConcurrencyWhile {
                        try state.storage.put("c", 3)
                        try state.storage.put("d", 4)
                    }
                    try await state.storage.sync()
                }
            }
            try await runtime.restart()
            let keys = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try await state.storage.list(as: Int.self).keys
            }
            #expect(keys == ["a", "b"])
        }
    }

    @Test("an object reset while its flush is in flight: the answer matches the disk; the next instance reads it")
    func resetDuringHeldFlush() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/instance") == "1")
            let gate = try runtime.holdStorageWrites()
            let write = Task { try await stub.text("/put", body: "v") }
            #expect(await eventually { gate.heldCount == 1 }, "the flush passed its check and is held")
            // The object is reset meanwhile (its blockConcurrencyWhile throws); the error, like any answer, waits for
            // the writes before it.
            let reset = Task { try await stub.text("/throw-in-block") }
            #expect(await eventually { (try? runtime.isActive(stub)) == false }, "the instance was reset")
            // A new instance is asked for at once; it must not read before the old flush is resolved.
            let read = Task { try await stub.text("/x") }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 1 }, "the next request waits")
            gate.open()
            await #expect(throws: Probe.ProbeError.self) { try await reset.value }
            let answer = await Result { try await write.value }
            let seen = try await read.value
            try await runtime.restart()
            let stored = try await stub.text("/x")
            switch answer {
            case .success(let text):
                #expect(text == "stored")
                #expect(stored == "v", "told it was stored, so it is on disk")
            case .failure(let error):
                #expect(stored == "none", "told it failed (\(error)), so it is not on disk")
            }
            #expect(seen == stored, "the next instance read what the old flush left")
        }
    }

    @Test("a throwing blockConcurrencyWhile resets the object")
    func throwingBlockResets() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/memory") == "1")
            #expect(try await stub.text("/memory") == "2")
            await #expect(throws: Probe.ProbeError.self) { try await stub.text("/throw-in-block") }
            #expect(try await stub.text("/memory") == "1", "a new instance with fresh memory")
            #expect(try await stub.text("/instance") == "2")
        }
    }

    @Test("a throwing blockConcurrencyWhile in the initializer fails the waiting requests and resets")
    func throwingStartup() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName("failing-start:"))
            await #expect(throws: Probe.ProbeError.self) { try await stub.text("/instance") }
            await #expect(throws: Probe.ProbeError.self) { try await stub.text("/instance") }
        }
    }

    @Test("blockConcurrencyWhile past its time limit is cancelled and resets the object, with the platform's words")
    func blockConcurrencyTimeout() async throws {
        try await withRuntime(RuntimeConfiguration(blockConcurrencyTimeout: .milliseconds(200))) { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/memory") == "1")
            let error = await #expect(throws: DurableObjectError.self) {
                try await stub.text("/wait-in-block?tag=\(uniqueName("never"))")
            }
            #expect(
                error?.message
                    == "A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was canceled and the Durable Object was reset."
            )
            #expect(try await stub.text("/memory") == "1", "a new instance")
        }
    }
}
