import Foundation
import Histogram
import Synchronization

/// How a run went, for the report.
struct RunResult {
    var histogram: Histogram<UInt64>
    var errors: [String: Int]
    var completed: Int
    var measured: Duration
    /// Calls the open loop could not start because `--max-in-flight` calls were already waiting.
    var notSent: Int
}

/// Flags and counters shared by the tasks of one run.
final class RunFlags: Sendable {
    let stop = Atomic<Bool>(false)
    let inFlight = Atomic<Int>(0)
    let notSent = Atomic<Int>(0)
    let histogram = Mutex(makeHistogram())
}

/// Prints a progress line to standard error every second while a run goes on.
func withProgress<T>(
    _ recorder: Recorder, quiet: Bool = false, inFlight: @escaping @Sendable () -> Int, _ body: () async throws -> T
) async rethrows -> T {
    if quiet { return try await body() }
    let started = ContinuousClock.now
    let reporter = Task {
        var last = 0
        var lastTime = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            if Task.isCancelled { break }
            let now = ContinuousClock.now
            let completed = recorder.completed
            let rate = Double(completed - last) / max(seconds(now - lastTime), 0.001)
            let phase = recorder.recording.load(ordering: .relaxed) ? "measuring" : "warming up"
            let errors = recorder.snapshot().errors
            let overloaded = errors["overloaded", default: 0]
            progress(
                String(
                    format: "[%5.1fs] %@: %d done, %.0f/s, %d errors (%d overloaded), %d in flight",
                    seconds(now - started), phase, completed, rate, recorder.failed, overloaded, inFlight()))
            last = completed
            lastTime = now
        }
    }
    defer { reporter.cancel() }
    return try await body()
}

/// A line on standard error.
func progress(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

/// Closed loop: `callers` tasks, each making its next call as soon as the last one finished, for `warmup` (not
/// recorded) and then `duration` (recorded).
func runClosedLoop(
    _ operation: any Operation, callers: Int, warmup: Duration, duration: Duration, recorder: Recorder
) async -> RunResult {
    let flags = RunFlags()
    let ownLatency = operation.recordsItsOwnLatency
    var measureStart = ContinuousClock.now
    var measureEnd = ContinuousClock.now
    await withProgress(recorder, inFlight: { flags.inFlight.load(ordering: .relaxed) }) {
        await withTaskGroup(of: Histogram<UInt64>.self) { group in
            for _ in 0..<callers {
                group.addTask {
                    var histogram = makeHistogram()
                    while !flags.stop.load(ordering: .relaxed) {
                        let begin = ContinuousClock.now
                        flags.inFlight.add(1, ordering: .relaxed)
                        do {
                            try await operation.run(intended: begin)
                            flags.inFlight.subtract(1, ordering: .relaxed)
                            if !ownLatency, recorder.recording.load(ordering: .relaxed) {
                                histogram.record(nanoseconds(ContinuousClock.now - begin))
                                recorder.countCompletion()
                            }
                        } catch {
                            flags.inFlight.subtract(1, ordering: .relaxed)
                            recorder.record(error: error)
                        }
                    }
                    return histogram
                }
            }
            try? await Task.sleep(for: warmup)
            measureStart = .now
            recorder.recording.store(true, ordering: .relaxed)
            try? await Task.sleep(until: measureStart + duration)
            recorder.recording.store(false, ordering: .relaxed)
            measureEnd = .now
            flags.stop.store(true, ordering: .relaxed)
            for await histogram in group { recorder.merge(histogram) }
        }
    }
    let (histogram, errors) = recorder.snapshot()
    return RunResult(
        histogram: histogram, errors: errors, completed: Int(histogram.totalCount), measured: measureEnd - measureStart,
        notSent: 0)
}

/// Open loop: calls start at a fixed rate whatever happens to earlier ones, and each call's latency counts from
/// the moment it was meant to start, so queueing in the system (or in the load generator) is not hidden.
///
/// - Parameter quiet: no progress lines (for a side stream running beside the main one).
func runOpenLoop(
    _ operation: any Operation, rate: Double, maxInFlight: Int, warmup: Duration, duration: Duration,
    recorder: Recorder, quiet: Bool = false
) async -> RunResult {
    let interval = Duration.nanoseconds(Int64(1e9 / rate))
    let flags = RunFlags()
    let ownLatency = operation.recordsItsOwnLatency
    let start = ContinuousClock.now
    let measureStart = start + warmup
    let end = measureStart + duration
    await withProgress(recorder, quiet: quiet, inFlight: { flags.inFlight.load(ordering: .relaxed) }) {
        await withDiscardingTaskGroup { group in
            var issued: Int64 = 0
            var recording = false
            while true {
                let now = ContinuousClock.now
                if !recording, now >= measureStart {
                    recording = true
                    recorder.recording.store(true, ordering: .relaxed)
                }
                // Start every call whose time has come.
                var intended = start + interval * issued
                while intended <= now, intended < end {
                    let counted = intended >= measureStart
                    if flags.inFlight.load(ordering: .relaxed) >= maxInFlight {
                        if counted { flags.notSent.add(1, ordering: .relaxed) }
                    } else {
                        flags.inFlight.add(1, ordering: .relaxed)
                        let due = intended
                        group.addTask {
                            do {
                                try await operation.run(intended: due)
                                flags.inFlight.subtract(1, ordering: .relaxed)
                                if counted, !ownLatency {
                                    let latency = nanoseconds(ContinuousClock.now - due)
                                    flags.histogram.withLock { _ = $0.record(latency) }
                                    recorder.countCompletion()
                                }
                            } catch {
                                flags.inFlight.subtract(1, ordering: .relaxed)
                                if counted { recorder.record(error: error) }
                            }
                        }
                    }
                    issued += 1
                    intended = start + interval * issued
                }
                if intended >= end { break }
                try? await Task.sleep(until: intended)
            }
        }
    }
    recorder.recording.store(false, ordering: .relaxed)
    if !ownLatency { recorder.merge(flags.histogram.withLock { $0 }) }
    let (merged, errors) = recorder.snapshot()
    return RunResult(
        histogram: merged, errors: errors, completed: Int(merged.totalCount), measured: duration,
        notSent: flags.notSent.load(ordering: .relaxed))
}
