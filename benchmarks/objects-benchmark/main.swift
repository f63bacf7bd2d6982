// Durable increments per second in process: one hot Counter, and increments spread over 1,000 Counters, beside
// the raw synced-write rate of the storage engine (group committer, and one fsync per write), in one run.
// Run it with `make bench-objects` (a release build).
//
// With `--resident N` it measures instead what resident objects cost: it makes N Counters resident (one read
// each), then prints the process's resident memory per object and the CPU the idle runtime uses over `--seconds`
// (the idle sweep looks at nothing that is not due).
//
//   objects-benchmark [--seconds S] [--callers C] [--objects N] [--resident N]

import DurableExamples
import DurableObjects
import DurableObjectsTesting
import DurableStorage
import Foundation
import Logging

struct Arguments {
    var seconds = 3.0
    var callers = 64
    var objects = 1_000
    var resident: Int?

    init() {
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
            case "--callers": callers = Int(arguments.next() ?? "") ?? callers
            case "--objects": objects = Int(arguments.next() ?? "") ?? objects
            case "--resident": resident = Int(arguments.next() ?? "")
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

let arguments = Arguments()

func log(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

/// A duration in seconds.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// Runs `callers` loops of `body(caller, iteration)` for the configured time; returns operations per second.
func measure(callers: Int, _ body: @escaping @Sendable (Int, Int) async throws -> Void) async throws -> Double {
    let deadline = ContinuousClock.now + .seconds(arguments.seconds)
    let started = ContinuousClock.now
    let total = try await withThrowingTaskGroup(of: Int.self) { group in
        for caller in 0..<callers {
            group.addTask {
                var count = 0
                while ContinuousClock.now < deadline {
                    try await body(caller, count)
                    count += 1
                }
                return count
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = ContinuousClock.now - started
    return Double(total) / seconds(elapsed)
}

var quiet = Logger(label: "bench")
quiet.logLevel = .warning

/// The process's resident memory, in bytes (`VmRSS` of /proc/self/status).
func residentBytes() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return (Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0) * 1024
}

/// CPU time the process has used (user and system), in seconds.
func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
        + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
}

if let resident = arguments.resident {
    // Objects stay resident for 10 minutes without a call: the measurement ends long before.
    let runtime = try DurableTestRuntime(
        classes: ExampleApp.classes, bindings: ExampleApp.bindings,
        configuration: RuntimeConfiguration(idleTimeout: .seconds(600)), logger: quiet)
    let counters = try runtime.namespace("COUNTER")
    _ = try await counters.getByName("warm-up").fetch("http://counter/")
    let before = residentBytes()
    let started = ContinuousClock.now
    log("objects-benchmark: making \(resident) objects resident (one read each, \(arguments.callers) callers)…")
    try await withThrowingTaskGroup(of: Void.self) { group in
        for caller in 0..<arguments.callers {
            group.addTask {
                var index = caller
                while index < resident {
                    _ = try await counters.getByName("resident-\(index)").fetch("http://counter/")
                    if index % 100_000 < arguments.callers { log("  \(index) resident") }
                    index += arguments.callers
                }
            }
        }
        try await group.waitForAll()
    }
    let activation = ContinuousClock.now - started
    let after = residentBytes()
    log("  idle for \(arguments.seconds) s…")
    let cpuBefore = cpuSeconds()
    let idleStarted = ContinuousClock.now
    try await Task.sleep(for: .seconds(arguments.seconds))
    let idleElapsed = ContinuousClock.now - idleStarted
    let idleSeconds = seconds(idleElapsed)
    let cpu = (cpuSeconds() - cpuBefore) / idleSeconds
    print("")
    print(
        String(
            format: """
                resident objects: %d made resident in %.1f s
                  resident memory: %.0f MiB before, %.0f MiB after: %.0f bytes per resident object \
                (%.2f GiB per 1,000,000)
                  idle CPU with them resident: %.2f %% of one core over %.0f s
                """, resident,
            seconds(activation),
            Double(before) / 1_048_576, Double(after) / 1_048_576, Double(after - before) / Double(resident),
            Double(after - before) / Double(resident) * 1_000_000 / 1_073_741_824, cpu * 100, idleSeconds))
    await runtime.close()
    exit(0)
}
let runtime = try DurableTestRuntime(
    classes: ExampleApp.classes, bindings: ExampleApp.bindings, logger: quiet)
let counters = try runtime.namespace("COUNTER")
let stubs = (0..<arguments.objects).map { counters.getByName("counter-\($0)") }
let hot = counters.getByName("hot")

log("objects-benchmark: \(arguments.callers) callers, \(arguments.seconds) s per measurement, in process")
log("  durable increments on one hot object…")
let hotRate = try await measure(callers: arguments.callers) { _, _ in
    _ = try await hot.fetch("http://counter/increment")
}
log("  durable increments across \(arguments.objects) objects…")
let spreadRate = try await measure(callers: arguments.callers) { caller, iteration in
    let stub = stubs[(caller &* 7919 &+ iteration) % stubs.count]
    _ = try await stub.fetch("http://counter/increment")
}
let hotValue = try await hot.fetch("http://counter/").text()
await runtime.close()

log("  raw synced writes through the group committer…")
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("durable-bench-\(UUID().uuidString)").path
defer { try? FileManager.default.removeItem(atPath: scratch) }
let database = try Database(path: scratch)
let family = try database.ensureColumnFamily(named: "raw")
let committer = GroupCommitter(database: database)
let value = [UInt8](repeating: 1, count: 8)
let rawGroupRate = try await measure(callers: arguments.callers) { caller, iteration in
    var batch = WriteBatch()
    batch.put(value, forKey: Array("c\(caller)-\(iteration % 100)".utf8), in: family)
    try await committer.commit(batch)
}
log("  raw synced writes, one fsync per write…")
let rawSingleRate = try await measure(callers: 1) { _, iteration in
    var batch = WriteBatch()
    batch.put(value, forKey: Array("single-\(iteration % 100)".utf8), in: family)
    try database.write(batch, sync: true)
}
database.close()

print("")
print(
    "in-process durable increments (\(arguments.callers) callers)    ops/s   vs group-commit raw   vs one fsync/write")
let rows: [(String, Double)] = [
    ("one hot object", hotRate),
    ("across \(arguments.objects) objects", spreadRate),
    ("raw: group committer, \(arguments.callers) writers", rawGroupRate),
    ("raw: one fsync per write", rawSingleRate),
]
for (name, rate) in rows {
    print(
        name.padding(toLength: 44, withPad: " ", startingAt: 0)
            + String(format: "%10.0f   %19.2fx   %18.1fx", rate, rate / rawGroupRate, rate / rawSingleRate))
}
print("(hot counter ended at \(hotValue))")
