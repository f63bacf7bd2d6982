@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import DurableStorage
import Foundation
import TestSupport
import Testing

@Suite("Overload (SEMANTICS §5)")
struct OverloadTests {
    /// Holds the object's input gate with a `/block` request, so that later requests queue.
    func block(_ stub: DurableObjectStub, tag: String) async throws -> Task<String, any Error> {
        let blocker = Task { try await stub.text("/block?tag=\(tag)", body: "blocker") }
        #expect(await eventually { Board.entries(tag) == ["ran blocker"] })
        return blocker
    }

    func expectOverloaded(_ result: Result<String, any Error>, _ message: String) {
        guard case .failure(let error) = result, let error = error as? DurableObjectError else {
            Issue.record("expected an overload error, got \(result)")
            return
        }
        #expect(error.message == message)
        #expect(error.overloaded)
        #expect(error.retryable)
        #expect(error.code == .resourceExhausted)
    }

    @Test("past the count bound a request is refused at once and never runs")
    func countBound() async throws {
        let limits = MailboxLimits(maxQueuedRequests: 2)
        try await withRuntime(RuntimeConfiguration(mailbox: limits)) { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("count")
            let blocker = try await block(stub, tag: tag)
            let queued = (1...2).map { index in Task { try await stub.text("/log?tag=\(tag)", body: "queued \(index)") }
            }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 2 })
            let refused = await Result { try await stub.text("/log?tag=\(tag)", body: "refused") }
            expectOverloaded(refused, "Durable Object is overloaded. Too many requests queued.")
            Board.latch(tag).open()
            _ = try await blocker.value
            for request in queued { _ = try await request.value }
            #expect(Set(Board.entries(tag)) == ["ran blocker", "ran queued 1", "ran queued 2"])
        }
    }

    @Test("past the bytes bound a request is refused at once and never runs")
    func bytesBound() async throws {
        let limits = MailboxLimits(maxQueuedBytes: 100)
        try await withRuntime(RuntimeConfiguration(mailbox: limits)) { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("bytes")
            let blocker = try await block(stub, tag: tag)
            let fits = String(repeating: "a", count: 80)
            let queued = Task { try await stub.text("/log?tag=\(tag)", body: fits) }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 1 })
            let refused = await Result {
                try await stub.text("/log?tag=\(tag)", body: String(repeating: "b", count: 30))
            }
            expectOverloaded(refused, "Durable Object is overloaded. Too much data queued.")
            Board.latch(tag).open()
            _ = try await blocker.value
            _ = try await queued.value
            #expect(Board.entries(tag) == ["ran blocker", "ran \(fits)"])
        }
    }

    @Test("a request that waited longer than the age bound is dropped when it reaches the head, not run late")
    func ageBound() async throws {
        // The runtime's clock moves only when the test moves it: the request waits "three seconds" however fast or
        // slow the machine is.
        let clock = ManualRuntimeClock()
        let limits = MailboxLimits(maxQueueAge: .seconds(2))
        try await withRuntime(RuntimeConfiguration(mailbox: limits, clock: clock)) { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("age")
            #expect(try await stub.text("/instance") == "1")
            let blocker = try await block(stub, tag: tag)
            let stale = Task { try await stub.text("/log?tag=\(tag)", body: "stale") }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 1 })
            clock.advance(by: .seconds(3))
            Board.latch(tag).open()
            _ = try await blocker.value
            expectOverloaded(await stale.result, "Durable Object is overloaded. Requests queued for too long.")
            #expect(Board.entries(tag) == ["ran blocker"])
            #expect(try await stub.text("/log?tag=\(tag)", body: "fresh") == "logged", "a fresh request runs")
        }
    }

    @Test("the default bounds let one object serve well over a thousand requests in a burst")
    func defaultsServeBursts() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let results = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<1_000 { group.addTask { try await stub.text("/increment") } }
                return try await group.reduce(into: [String]()) { $0.append($1) }
            }
            #expect(Set(results).count == 1_000)
        }
    }
}

@Suite("Single instance and eviction (SEMANTICS §2)")
struct LifecycleTests {
    @Test("concurrent first requests create exactly one instance")
    func oneActivation() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let instances = try await withThrowingTaskGroup(of: String.self) { group in
                for _ in 0..<50 { group.addTask { try await stub.text("/instance") } }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(instances == ["1"])
            #expect(Board.count("instances:\(stub.id)") == 1)
        }
    }

    @Test("an evicted object runs its initializer again and sees its stored state")
    func evictionKeepsStorage() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/increment") == "1")
            #expect(try await stub.text("/memory") == "1")
            #expect(try runtime.evict(stub))
            #expect(try !runtime.isActive(stub))
            #expect(try await stub.text("/memory") == "1", "in-memory state started over")
            #expect(try await stub.text("/instance") == "2")
            #expect(try await stub.text("/increment") == "2", "stored state survived")
        }
    }

    @Test("an idle object is evicted after the idle timeout")
    func idleTimeout() async throws {
        let clock = ManualRuntimeClock()
        try await withRuntime(RuntimeConfiguration(idleTimeout: .seconds(60), clock: clock)) { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/increment") == "1")
            clock.advance(by: .seconds(59))
            #expect(try runtime.isActive(stub), "not idle long enough yet")
            clock.advance(by: .seconds(2))
            // The sweep runs every second: the object goes at the next one.
            #expect(await eventually { (try? runtime.isActive(stub)) == false })
            #expect(try await stub.text("/instance") == "2")
            #expect(try await stub.text("/count") == "1")
        }
    }

    @Test("an object called again before its timeout is looked at again, and evicted once idle for the timeout")
    func idleTimeoutCountsFromTheLastCall() async throws {
        let clock = ManualRuntimeClock()
        try await withRuntime(RuntimeConfiguration(idleTimeout: .seconds(60), clock: clock)) { runtime in
            let namespace = try runtime.namespace("PROBE")
            let busy = namespace.getByName(uniqueName("busy"))
            let idle = namespace.getByName(uniqueName("idle"))
            #expect(try await busy.text("/increment") == "1")
            #expect(try await idle.text("/increment") == "1")
            clock.advance(by: .seconds(50))
            #expect(try await busy.text("/increment") == "2")
            clock.advance(by: .seconds(11))
            // Both were due for a look now; the sweep that evicted the idle one kept the other (called 11 s ago).
            #expect(await eventually { (try? runtime.isActive(idle)) == false })
            #expect(try runtime.isActive(busy), "called 11 s ago")
            clock.advance(by: .seconds(50))
            #expect(await eventually { (try? runtime.isActive(busy)) == false }, "idle for 61 s")
            #expect(try await busy.text("/count") == "2")
        }
    }

    @Test("a busy object is not evicted")
    func busyNotEvicted() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("busy")
            let blocker = Task { try await stub.text("/block?tag=\(tag)") }
            #expect(await eventually { !Board.entries(tag).isEmpty })
            #expect(try !runtime.evict(stub))
            Board.latch(tag).open()
            _ = try await blocker.value
            #expect(try runtime.evict(stub))
        }
    }

    @Test("requests racing evictions in a tight loop all reach an instance: none hangs, none is told it was superseded")
    func evictionRacingRequests() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let done = Latch()
            let evictions = Recorder<Bool>()
            // Two evictors, so that an eviction often meets a request half-way through its arrival.
            let evictors = (0..<2).map { _ in
                Task {
                    while !done.isOpen {
                        evictions.append((try? runtime.evict(stub)) ?? false)
                        await Task.yield()
                    }
                }
            }
            let requests = Task {
                try await withThrowingTaskGroup(of: String.self) { group in
                    var answers: [String] = []
                    for index in 0..<3_000 {
                        if index >= 2, let answer = try await group.next() { answers.append(answer) }
                        group.addTask { try await stub.text("/increment") }
                    }
                    for try await answer in group { answers.append(answer) }
                    return answers
                }
            }
            #expect(await finishes(requests, within: .seconds(300)), "no request hangs")
            done.open()
            for evictor in evictors { await evictor.value }
            let answers = try await requests.value
            #expect(Set(answers) == Set((1...3_000).map(String.init)), "every increment ran once, in order")
            #expect(evictions.values.contains(true), "the object was evicted between requests")
            #expect(try await stub.text("/count") == "3000")
        }
    }

    @Test("a superseded instance that touches storage gets the platform's error")
    func supersededInstance() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let oldState = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in state }
            #expect(try runtime.evict(stub))
            let error = #expect(throws: DurableObjectError.self) { try oldState.storage.put("k", 1) }
            #expect(
                error?.message
                    == "Connection closed: this Durable Object instance is no longer active. Reconnect or retry the request."
            )
            #expect(try await stub.text("/count") == "0")
        }
    }

    @Test("a failed flush answers the platform's error, resets the object, and the next request works")
    func failedFlushResets() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/increment") == "1")
            try runtime.injectWriteFailure(stub)
            let error = await #expect(throws: DurableObjectError.self) { try await stub.text("/increment") }
            #expect(error?.message == "Internal error in Durable Object storage write caused object to be reset.")
            #expect(try await stub.text("/instance") == "2")
            #expect(try await stub.text("/increment") == "2", "the failed write is not on disk")
        }
    }
}

@Suite("Namespaces redefined and dropped (SEMANTICS §2)")
struct NamespaceLifecycleTests {
    @Test("a namespace whose class changed resets its instances with the platform's words")
    func classChangeResets() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let oldState = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in state }
            let inner = try runtime.runtime
            inner.register(DurableObjectClass(Probe.self, name: "ProbeV2"))
            let current = try #require(inner.namespaceDefinition("Probe"))
            try inner.defineNamespace(NamespaceDefinition(id: "Probe", className: "ProbeV2", key: current.key))
            let error = #expect(throws: DurableObjectError.self) { try oldState.storage.put("k", 1) }
            #expect(error?.message == "Durable Object reset because its code was updated.")
            #expect(try await stub.text("/instance") == "2", "the next request runs the new class")
        }
    }

    @Test("dropping a namespace deletes its objects' data")
    func dropDeletesData() async throws {
        try await withRuntime { runtime in
            let namespace = try runtime.namespace("PROBE")
            _ = try await namespace.getByName("doomed").text("/increment")
            let inner = try runtime.runtime
            let definition = try #require(inner.namespaceDefinition("Probe"))
            try inner.dropNamespace("Probe")
            await #expect(throws: DurableObjectError.self) { try await namespace.getByName("doomed").text("/count") }
            try inner.defineNamespace(definition)
            #expect(try await namespace.getByName("doomed").text("/count") == "0")
        }
    }

    @Test("dropping a namespace removes every row the node keeps for it: names, alarms, sockets, auto-responses")
    func dropRemovesEveryRow() async throws {
        try await withRuntime { runtime in
            let namespace = try runtime.namespace("PROBE")
            let named = namespace.getByName("doomed")
            #expect(try await named.text("/increment") == "1")
            let inner = try runtime.runtime
            let database = inner.database
            let meta = try database.defaultColumnFamily
            let hex = named.id.hexString
            // The rows an object with an alarm, a socket and an automatic response leaves, for this namespace and
            // for one whose id extends it with "/" (which must keep its own).
            var batch = WriteBatch()
            for space in ["Probe", "Probe/other"] {
                batch.put([1], forKey: Array("ws/\(space)/\(hex)/socket-1".utf8), in: meta)
                batch.put([1], forKey: Array("wsauto/\(space)/\(hex)".utf8), in: meta)
            }
            try database.write(batch, sync: true)
            try inner.dropNamespace("Probe")
            var left: [String] = []
            try database.forEach(in: meta, ScanOptions()) { key, _ in
                let text = String(decoding: key, as: UTF8.self)
                if text.contains(hex) { left.append(text) }
                return true
            }
            #expect(left.sorted() == ["ws/Probe/other/\(hex)/socket-1", "wsauto/Probe/other/\(hex)"], "\(left)")
        }
    }
}
