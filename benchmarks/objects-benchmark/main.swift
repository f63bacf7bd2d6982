// Durable increments per second in process: one hot Counter, and increments spread over 1,000 Counters, beside
// the raw synced-write rate of the storage engine (group committer, and one fsync per write), in one run.
// Run it with `make bench-objects` (a release build).
//
//   objects-benchmark [--seconds S] [--callers C] [--objects N]

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

    init() {
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
            case "--callers": callers = Int(arguments.next() ?? "") ?? callers
            case "--objects": objects = Int(arguments.next() ?? "") ?? objects
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

let arguments = Arguments()

func log(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

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
    return Double(total) / (Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
}

var quiet = Logger(label: "bench")
quiet.logLevel = .warning
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
