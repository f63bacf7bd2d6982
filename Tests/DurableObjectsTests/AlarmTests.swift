import DurableMetrics
@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import Foundation
import TestSupport
import Testing

/// An object that drives its alarm from requests and records each delivery on the ``Board`` under its tag.
///
/// - `POST /set?at=MS` or `?in=MS`: `setAlarm` (absolute epoch milliseconds, or from now); answers the error text
///   when it throws. `&rollback=1` sets it inside a transaction that rolls back.
/// - `GET /get`: the alarm in epoch milliseconds, or `none`.
/// - `POST /delete`, `POST /delete-all`, `GET /list` (the keys), `POST /fail?times=N` (the next N deliveries
///   throw), `POST /reschedule?in=MS` (the next delivery sets a new alarm), `POST /block` (the next delivery waits
///   for the latch `<tag>-release`).
actor AlarmProbe: DurableObject, AlarmHandling {
    nonisolated let state: DurableObjectState

    init(state: DurableObjectState, env: Environment) { self.state = state }

    func fetch(_ request: Request) async throws -> Response {
        let query = Dictionary(request.queryItems.map { ($0.name, $0.value ?? "") }) { $1 }
        if let tag = query["tag"] { try state.storage.put("tag", tag) }
        switch request.path {
        case "/set":
            let time = Double(query["at"] ?? "") ?? (Date().timeIntervalSince1970 * 1_000 + Double(query["in"] ?? "0")!)
            do {
                if query["rollback"] == "1" {
                    try await state.storage.transaction { transaction in
                        try await transaction.setAlarm(epochMilliseconds: time)
                        transaction.rollback()
                    }
                } else {
                    try await state.storage.setAlarm(epochMilliseconds: time)
                }
                return Response("ok")
            } catch {
                return Response("\(error)")
            }
        case "/get":
            return Response(try await alarmText())
        case "/delete":
            try await state.storage.deleteAlarm()
            return Response("ok")
        case "/delete-all":
            try await state.storage.deleteAll()
            return Response("ok")
        case "/list":
            return Response(try await state.storage.list(as: StorageValue.self).map(\.key).joined(separator: ","))
        case "/fail":
            try state.storage.put("failures", Int(query["times"] ?? "1")!)
            return Response("ok")
        case "/reschedule":
            try state.storage.put("reschedule", Double(query["in"] ?? "0")!)
            return Response("ok")
        case "/block":
            try state.storage.put("block", true)
            return Response("ok")
        case "/rollback-in-alarm":
            try state.storage.put("rollback-in-alarm", true)
            return Response("ok")
        default:
            return Response("Not found", status: .notFound)
        }
    }

    func alarm(_ info: AlarmInfo) async throws {
        let tag = try await state.storage.get("tag", as: String.self) ?? "untagged"
        let seen = try await alarmText()
        Board.log(tag, "ran retry=\(info.retryCount) isRetry=\(info.isRetry) get=\(seen)")
        Board.log(tag + "-times", "\(Date().timeIntervalSince1970)")
        if try await state.storage.get("block", as: Bool.self) == true {
            Board.log(tag, "blocked")
            await Board.latch(tag + "-release").wait()
        }
        let failures = try await state.storage.get("failures", as: Int.self) ?? 0
        if failures > 0 {
            try state.storage.put("failures", failures - 1)
            throw DurableObjectError(.internal, "planned alarm failure")
        }
        if try await state.storage.get("rollback-in-alarm", as: Bool.self) == true {
            try await state.storage.transaction { transaction in
                try await transaction.setAlarm(Date().addingTimeInterval(3_600))
                transaction.rollback()
            }
            Board.log(tag, "rolled back get=\(try await alarmText())")
        }
        if let delay = try await state.storage.get("reschedule", as: Double.self) {
            try await state.storage.delete("reschedule")
            try await state.storage.setAlarm(epochMilliseconds: Date().timeIntervalSince1970 * 1_000 + delay)
            Board.log(tag, "rescheduled get-after=\(try await alarmText() != "none")")
        }
        try state.storage.put("fired", (try await state.storage.get("fired", as: Int.self) ?? 0) + 1)
    }

    private func alarmText() async throws -> String {
        guard let date = try await state.storage.getAlarm() else { return "none" }
        return "\(Int64((date.timeIntervalSince1970 * 1_000).rounded()))"
    }
}

/// An object without an alarm handler that tries to set one.
actor NoAlarmProbe: DurableObject {
    nonisolated let state: DurableObjectState

    init(state: DurableObjectState, env: Environment) { self.state = state }

    func fetch(_ request: Request) async throws -> Response {
        do {
            try await state.storage.setAlarm(Date().addingTimeInterval(60))
            return Response("ok")
        } catch {
            return Response("\(error)")
        }
    }
}

/// The alarm rules of the Semantics article: one alarm per object, at-least-once, retries with backoff, the exact
/// errors, `getAlarm()` inside the handler, not a key, removed by `deleteAll()`, surviving restarts.
@Suite("Alarms")
struct AlarmTests {
    static let fastRetries = AlarmRetryPolicy(initialDelay: .milliseconds(40), maximumRetries: 6)

    func withAlarmRuntime<T>(
        retry: AlarmRetryPolicy = fastRetries, directory: String? = nil, metrics: MetricsRegistry? = nil,
        clock: any RuntimeClock = SystemRuntimeClock(), _ body: (DurableTestRuntime) async throws -> T
    ) async throws -> T {
        let runtime = try DurableTestRuntime(
            classes: [DurableObjectClass(AlarmProbe.self), DurableObjectClass(NoAlarmProbe.self)],
            bindings: ["ALARMS": "AlarmProbe", "PLAIN": "NoAlarmProbe"],
            configuration: RuntimeConfiguration(
                idleTimeout: .seconds(60), alarmRetry: retry,
                metricsFactory: metrics?.factory() ?? RuntimeConfiguration().metricsFactory, clock: clock),
            directory: directory)
        do {
            let value = try await body(runtime)
            await runtime.close()
            return value
        } catch {
            await runtime.close()
            throw error
        }
    }

    static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1_000) }

    @Test("an alarm runs at its time, once; getAlarm() is nil inside the handler; the alarm is gone afterwards")
    func firesOnce() async throws {
        try await withAlarmRuntime { runtime in
            let tag = uniqueName("fires")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            let later = Self.nowMilliseconds() + 3_600_000
            #expect(try await stub.text("/set?tag=\(tag)&at=\(later)") == "ok")
            #expect(try await stub.fetch("http://a/get").text() == "\(later)")
            let due = Self.nowMilliseconds() + 150
            #expect(try await stub.text("/set?at=\(due)") == "ok")
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).count == 1 })
            #expect(Board.entries(tag) == ["ran retry=0 isRetry=false get=none"])
            let ranAt = Double(Board.entries(tag + "-times")[0])! * 1_000
            #expect(ranAt >= Double(due) - 1, "ran \(Double(due) - ranAt) ms early")
            #expect(try await stub.fetch("http://a/get").text() == "none")
            #expect(try runtime.runtime.scheduledAlarm(namespaceID: "AlarmProbe", id: stub.id) == nil)
            #expect(try await stub.fetch("http://a/list").text() == "fired,tag")
            #expect(Board.entries(tag).count == 1)
        }
    }

    @Test("by the runtime's clock, an alarm waits until its time and runs when the clock reaches it")
    func runsWhenTheClockReachesIt() async throws {
        let clock = ManualRuntimeClock()
        try await withAlarmRuntime(clock: clock) { runtime in
            let tag = uniqueName("clock")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            let due = clock.epochMilliseconds + 10_000
            #expect(try await stub.text("/set?tag=\(tag)&at=\(due)") == "ok")
            #expect(await eventually { clock.sleeperCount == 1 }, "the alarm waits for its time")
            clock.advance(by: .milliseconds(9_999))
            // Nothing ran: the alarm still waits (a clock that moves wakes due sleepers before it returns).
            #expect(clock.sleeperCount == 1)
            #expect(Board.entries(tag).isEmpty)
            #expect(try await stub.fetch("http://a/get").text() == "\(due)")
            clock.advance(by: .milliseconds(1))
            #expect(await eventually { Board.entries(tag).count == 1 })
            #expect(Board.entries(tag) == ["ran retry=0 isRetry=false get=none"])
            #expect(await eventually { (try? runtime.runtime.scheduledAlarmCount) == 0 })
        }
    }

    @Test("a failed alarm is retried after the policy's delay by the runtime's clock, not before")
    func retryWaitsItsDelay() async throws {
        let clock = ManualRuntimeClock()
        try await withAlarmRuntime(retry: AlarmRetryPolicy(), clock: clock) { runtime in
            let tag = uniqueName("retry-clock")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await stub.text("/fail?tag=\(tag)&times=1") == "ok")
            #expect(try await stub.text("/set?at=\(clock.epochMilliseconds)") == "ok")
            #expect(await eventually { Board.entries(tag).count == 1 && clock.sleeperCount == 1 })
            clock.advance(by: .milliseconds(1_999))
            #expect(clock.sleeperCount == 1, "the retry waits its 2 s")
            #expect(Board.entries(tag).count == 1)
            clock.advance(by: .milliseconds(1))
            #expect(await eventually { Board.entries(tag).count == 2 })
            #expect(Board.entries(tag).last == "ran retry=1 isRetry=true get=none")
        }
    }

    @Test("a setAlarm() rolled back inside alarm() leaves no alarm: the one that ran is removed and does not run again")
    func rollbackInsideHandler() async throws {
        try await withAlarmRuntime { runtime in
            let tag = uniqueName("rollback-in-alarm")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await stub.text("/rollback-in-alarm?tag=\(tag)") == "ok")
            #expect(try await stub.text("/set?at=1") == "ok")
            #expect(await eventually { Board.entries(tag).count == 2 })
            #expect(Board.entries(tag) == ["ran retry=0 isRetry=false get=none", "rolled back get=none"])
            #expect(await eventually { (try? runtime.runtime.scheduledAlarmCount) == 0 })
            #expect(try await stub.fetch("http://a/get").text() == "none", "no alarm is left set")
            try await runtime.restart()
            #expect(try await stub.fetch("http://a/get").text() == "none", "nor on disk")
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
        }
    }

    @Test("a time in the past runs as soon as possible")
    func pastTimeRunsNow() async throws {
        try await withAlarmRuntime { runtime in
            let tag = uniqueName("past")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await stub.text("/set?tag=\(tag)&at=1") == "ok")
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).count == 1 })
        }
    }

    @Test("a time <= 0 and a class without alarm() are refused with the exact errors")
    func errors() async throws {
        try await withAlarmRuntime { runtime in
            let stub = try runtime.namespace("ALARMS").getByName(uniqueName("errors"))
            #expect(try await stub.text("/set?at=0") == "setAlarm() cannot be called with an alarm time <= 0")
            #expect(try await stub.text("/set?at=-1500") == "setAlarm() cannot be called with an alarm time <= 0")
            #expect(try await stub.fetch("http://a/get").text() == "none")
            let plain = try runtime.namespace("PLAIN").getByName("plain")
            #expect(
                try await plain.text("/")
                    == "Your Durable Object class must have an alarm() handler in order to call setAlarm()")
            #expect(DurableObjectError.noAlarmHandler.code == .invalidArgument)
        }
    }

    @Test("one alarm per object: setting again replaces the time; deleteAlarm() cancels it")
    func replaceAndDelete() async throws {
        try await withAlarmRuntime { runtime in
            let tag = uniqueName("replace")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            let later = Self.nowMilliseconds() + 3_600_000
            #expect(try await stub.text("/set?tag=\(tag)&at=\(later)") == "ok")
            #expect(try runtime.runtime.scheduledAlarmCount == 1)
            let sooner = Self.nowMilliseconds() + 50
            #expect(try await stub.text("/set?at=\(sooner)") == "ok")
            // Runs once, and nothing is left: the hour-later alarm was replaced, not added.
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).count == 1 })
            #expect(try await stub.fetch("http://a/get").text() == "none")
            #expect(try runtime.runtime.scheduledAlarmCount == 0)

            #expect(try await stub.text("/set?at=\(later)") == "ok")
            #expect(try await stub.text("/delete") == "ok")
            #expect(try await stub.fetch("http://a/get").text() == "none")
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
            try await runtime.restart()
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
            #expect(try await stub.fetch("http://a/get").text() == "none")
        }
    }

    @Test("the alarm is not a key: list() never shows it; deleteAll() removes it")
    func notAKey() async throws {
        try await withAlarmRuntime { runtime in
            let stub = try runtime.namespace("ALARMS").getByName(uniqueName("list"))
            let later = Self.nowMilliseconds() + 3_600_000
            #expect(try await stub.text("/set?tag=t&at=\(later)") == "ok")
            #expect(try await stub.fetch("http://a/list").text() == "tag")
            try await runtime.restart()
            #expect(try await stub.fetch("http://a/list").text() == "tag")
            #expect(try await stub.fetch("http://a/get").text() == "\(later)")
            #expect(try await stub.text("/delete-all") == "ok")
            #expect(try await stub.fetch("http://a/get").text() == "none")
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
            try await runtime.restart()
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
            #expect(try await stub.fetch("http://a/get").text() == "none")
            #expect(try await stub.fetch("http://a/list").text() == "")
        }
    }

    @Test("a setAlarm() in a rolled-back transaction never happened")
    func transactionRollback() async throws {
        try await withAlarmRuntime { runtime in
            let stub = try runtime.namespace("ALARMS").getByName(uniqueName("tx"))
            #expect(try await stub.text("/set?in=10&rollback=1") == "ok")
            #expect(try await stub.fetch("http://a/get").text() == "none")
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
        }
    }

    @Test("a failing handler is retried with doubling delays, with retryCount and isRetry")
    func retriesWithBackoff() async throws {
        try await withAlarmRuntime { runtime in
            let tag = uniqueName("retry")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await stub.text("/fail?tag=\(tag)&times=3") == "ok")
            #expect(try await stub.text("/set?in=0") == "ok")
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).count == 4 })
            #expect(
                Board.entries(tag) == [
                    "ran retry=0 isRetry=false get=none", "ran retry=1 isRetry=true get=none",
                    "ran retry=2 isRetry=true get=none", "ran retry=3 isRetry=true get=none",
                ])
            let times = Board.entries(tag + "-times").map { Double($0)! }
            let gaps = zip(times.dropFirst(), times).map { ($0 - $1) * 1_000 }
            // 40 ms, 80 ms, 160 ms: each wait at least its delay.
            for (gap, delay) in zip(gaps, [40.0, 80, 160]) { #expect(gap >= delay - 1, "gaps \(gaps)") }
            #expect(await eventually(timeout: .seconds(60)) { (try? runtime.runtime.scheduledAlarmCount) == 0 })
            #expect(try await stub.fetch("http://a/get").text() == "none")
        }
    }

    @Test("after the last of 6 retries fails, the alarm is dropped")
    func givesUpAfterSixRetries() async throws {
        try await withAlarmRuntime(retry: AlarmRetryPolicy(initialDelay: .milliseconds(2), maximumRetries: 6)) {
            runtime in
            let tag = uniqueName("giveup")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await stub.text("/fail?tag=\(tag)&times=100") == "ok")
            #expect(try await stub.text("/set?in=0") == "ok")
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).count == 7 })
            #expect(
                await eventually(timeout: .seconds(60)) {
                    (try? await stub.fetch("http://a/get").text()) == "none"
                })
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
            #expect(Board.entries(tag).last == "ran retry=6 isRetry=true get=none")
            #expect(AlarmRetryPolicy().delay(beforeRetry: 1) == .seconds(2))
            #expect(AlarmRetryPolicy().delay(beforeRetry: 6) == .seconds(64))
            #expect(AlarmRetryPolicy().maximumRetries == 6)
        }
    }

    @Test("a handler that sets a new alarm sees it with getAlarm(), and it runs again")
    func handlerReschedules() async throws {
        try await withAlarmRuntime { runtime in
            let tag = uniqueName("again")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await stub.text("/reschedule?tag=\(tag)&in=30") == "ok")
            #expect(try await stub.text("/set?in=0") == "ok")
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).count == 3 })
            #expect(
                Board.entries(tag) == [
                    "ran retry=0 isRetry=false get=none", "rescheduled get-after=true",
                    "ran retry=0 isRetry=false get=none",
                ])
            #expect(await eventually(timeout: .seconds(60)) { (try? runtime.runtime.scheduledAlarmCount) == 0 })
            #expect(try await stub.fetch("http://a/get").text() == "none")
        }
    }

    @Test("alarms survive a restart: a future one is scheduled again, an overdue one runs at once")
    func survivesRestart() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alarms-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tag = uniqueName("restart")
        let later = Self.nowMilliseconds() + 3_600_000
        // Far enough ahead that the first runtime has stopped before it is due, even on a loaded machine.
        let soon = Self.nowMilliseconds() + 3_000
        let (future, overdue) = try await withAlarmRuntime(directory: directory) { runtime in
            let future = try runtime.namespace("ALARMS").getByName(tag + "-future")
            let overdue = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await future.text("/set?tag=\(tag)-future&at=\(later)") == "ok")
            #expect(try await overdue.text("/set?tag=\(tag)&at=\(soon)") == "ok")
            return (future.id, overdue.id)
        }
        // The node is down while the alarm comes due.
        #expect(await eventually(timeout: .seconds(60)) { Self.nowMilliseconds() > soon + 50 })
        #expect(Board.entries(tag).isEmpty)
        try await withAlarmRuntime(directory: directory) { runtime in
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).count == 1 })
            let namespace = try runtime.namespace("ALARMS")
            let scheduled = try runtime.runtime.scheduledAlarm(namespaceID: "AlarmProbe", id: future)
            #expect(scheduled.map { Int64(($0.timeIntervalSince1970 * 1_000).rounded()) } == later)
            #expect(try await namespace.get(overdue).fetch("http://a/get").text() == "none")
            #expect(Board.entries(tag + "-future").isEmpty)
        }
    }

    @Test("at least once: a handler cut short by a restart runs again afterwards")
    func atLeastOnce() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("alarms-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let tag = uniqueName("once")
        try await withAlarmRuntime(directory: directory) { runtime in
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await stub.text("/block?tag=\(tag)") == "ok")
            #expect(try await stub.text("/set?in=0") == "ok")
            #expect(await eventually(timeout: .seconds(60)) { Board.entries(tag).contains("blocked") })
        }
        // The first run never finished; it is released only now, into a stopped runtime.
        Board.latch(tag + "-release").open()
        try await withAlarmRuntime(directory: directory) { runtime in
            #expect(
                await eventually(timeout: .seconds(60)) { Board.entries(tag).filter { $0.hasPrefix("ran") }.count == 2 }
            )
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(
                await eventually(timeout: .seconds(60)) {
                    (try? await stub.fetch("http://a/get").text()) == "none"
                })
        }
    }

    @Test("alarm deliveries are counted by outcome: ok, retried, dropped")
    func metrics() async throws {
        let registry = MetricsRegistry()
        let retries = AlarmRetryPolicy(initialDelay: .milliseconds(2), maximumRetries: 2)
        try await withAlarmRuntime(retry: retries, metrics: registry) { runtime in
            let tag = uniqueName("metrics")
            let good = try runtime.namespace("ALARMS").getByName(tag + "-good")
            let bad = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await good.text("/set?tag=\(tag)-good&in=0") == "ok")
            #expect(try await bad.text("/fail?tag=\(tag)&times=100") == "ok")
            #expect(try await bad.text("/set?in=0") == "ok")
            #expect(
                await eventually(timeout: .seconds(60)) {
                    Board.entries(tag).count == 3 && Board.entries(tag + "-good").count == 1
                })
            func count(_ outcome: String) -> Double {
                let scrape = try? PrometheusScrape(registry.exposition())
                return scrape?.sum("durable_object_alarms_total", ["outcome": outcome]) ?? -1
            }
            #expect(await eventually(timeout: .seconds(60)) { count("dropped") == 1 })
            #expect(count("ok") == 1)
            #expect(count("retried") == 2)
        }
    }

    @Test("the testing module runs an alarm on demand")
    func runOnDemand() async throws {
        try await withAlarmRuntime { runtime in
            let tag = uniqueName("demand")
            let stub = try runtime.namespace("ALARMS").getByName(tag)
            #expect(try await runtime.runDurableObjectAlarm(stub) == false)
            #expect(try await stub.text("/set?tag=\(tag)&in=3600000") == "ok")
            #expect(try await runtime.runDurableObjectAlarm(stub) == true)
            #expect(Board.entries(tag) == ["ran retry=0 isRetry=false get=none"])
            #expect(try await stub.fetch("http://a/get").text() == "none")
            #expect(try runtime.runtime.scheduledAlarmCount == 0)
            #expect(try await runtime.runDurableObjectAlarm(stub) == false)
        }
    }
}
