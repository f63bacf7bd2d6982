// RPC over loopback against a real `durable node` process: a no-op call (Node/Health) and a durable increment
// (Counter /increment over 1,000 objects), with 1 and 64 concurrent callers, throughput and p50/p99 from
// HdrHistogram — beside `redis-benchmark` PING and INCR against redis-server with appendonly yes and
// appendfsync always (when redis-server is installed), in one run. Run it with `make bench-rpc`.
//
//   rpc-benchmark [--seconds S] [--objects N] [--callers 1,64]

import DurableClient
import DurableObjects
import Foundation
import Histogram
import Synchronization

struct Arguments {
    var seconds = 3.0
    var objects = 1_000
    var callerCounts = [1, 64]

    init() {
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
            case "--objects": objects = Int(arguments.next() ?? "") ?? objects
            case "--callers": callerCounts = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

struct Figures {
    var rate: Double
    var p50: Double  // milliseconds
    var p99: Double
}

let arguments = Arguments()
func log(_ line: String) { FileHandle.standardError.write(Data((line + "\n").utf8)) }

/// A scratch folder removed at exit.
let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("durable-rpc-bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(at: scratch) }

/// Starts a program and returns the process and its stdout reader.
func launch(_ path: String, _ arguments: [String]) throws -> (Process, FileHandle) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    return (process, pipe.fileHandleForReading)
}

// MARK: durable

let durablePath = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    .deletingLastPathComponent().appendingPathComponent("durable").path
let (node, nodeOutput) = try launch(
    durablePath,
    ["node", "--port", "0", "--data", scratch.appendingPathComponent("node").path, "--log-level", "warning"])
var nodePort = 0
var buffered = ""
while nodePort == 0 {
    let data = nodeOutput.availableData
    if data.isEmpty { fatalError("the node exited before it listened") }
    buffered += String(decoding: data, as: UTF8.self)
    if let range = buffered.range(of: "listening on 127.0.0.1:") {
        nodePort = Int(buffered[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }
}
defer {
    kill(node.processIdentifier, SIGTERM)
    node.waitUntilExit()
}

/// Runs `callers` loops of `body` for the configured time, recording each call's latency.
func measure(callers: Int, _ body: @escaping @Sendable (Int, Int) async throws -> Void) async throws -> Figures {
    let deadline = ContinuousClock.now + .seconds(arguments.seconds)
    let started = ContinuousClock.now
    let histograms = try await withThrowingTaskGroup(of: Histogram<UInt64>.self) { group in
        for caller in 0..<callers {
            group.addTask {
                var histogram = Histogram<UInt64>(
                    highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
                var iteration = 0
                while ContinuousClock.now < deadline {
                    let begin = ContinuousClock.now
                    try await body(caller, iteration)
                    let elapsed = ContinuousClock.now - begin
                    _ = histogram.record(
                        UInt64(
                            elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
                    )
                    iteration += 1
                }
                return histogram
            }
        }
        return try await group.reduce(into: [Histogram<UInt64>]()) { $0.append($1) }
    }
    var total = Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
    for histogram in histograms { total.add(histogram) }
    let elapsed = ContinuousClock.now - started
    let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    return Figures(
        rate: Double(total.totalCount) / seconds, p50: Double(total.valueAtPercentile(50)) / 1e6,
        p99: Double(total.valueAtPercentile(99)) / 1e6)
}

let client = DurableClient(host: "127.0.0.1", port: nodePort, connections: 4)
let counters = try await client.namespace("COUNTER")
let stubs = (0..<arguments.objects).map { counters.getByName("bench-\($0)") }
var durable: [String: Figures] = [:]
for callers in arguments.callerCounts {
    log("durable: no-op (Node/Health), \(callers) caller(s)…")
    durable["noop-\(callers)"] = try await measure(callers: callers) { _, _ in _ = try await client.health() }
    log("durable: durable increment over \(arguments.objects) objects, \(callers) caller(s)…")
    durable["incr-\(callers)"] = try await measure(callers: callers) { caller, iteration in
        _ = try await stubs[(caller &* 7919 &+ iteration) % stubs.count].fetch("http://counter/increment")
    }
}
await client.close()

// MARK: redis

func findExecutable(_ name: String) -> String? {
    ["/usr/bin", "/usr/local/bin", "/usr/sbin"].map { "\($0)/\(name)" }.first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
}

var redis: [String: Figures] = [:]
if let server = findExecutable("redis-server"), let bench = findExecutable("redis-benchmark") {
    let port = 20_000 + Int.random(in: 0..<20_000)
    let (redisProcess, _) = try launch(
        server,
        [
            "--port", "\(port)", "--bind", "127.0.0.1", "--appendonly", "yes", "--appendfsync", "always", "--save", "",
            "--dir", scratch.path, "--daemonize", "no",
        ])
    defer {
        // A scratch instance: no need for its shutdown save.
        kill(redisProcess.processIdentifier, SIGKILL)
        redisProcess.waitUntilExit()
    }
    // Wait until it answers.
    for _ in 0..<200 {
        let (ping, output) = try launch(findExecutable("redis-cli") ?? "/usr/bin/redis-cli", ["-p", "\(port)", "ping"])
        ping.waitUntilExit()
        if String(decoding: output.readDataToEndOfFile(), as: UTF8.self).contains("PONG") { break }
        try await Task.sleep(for: .milliseconds(25))
    }
    for callers in arguments.callerCounts {
        // Roughly the same duration as ours: aim at the number of calls we managed per test.
        for (test, key) in [("ping_mbulk", "noop"), ("incr", "incr")] {
            log("redis: \(test), \(callers) caller(s)…")
            let calls = max(1_000, Int((durable["\(key)-\(callers)"]?.rate ?? 10_000) * arguments.seconds))
            let (process, output) = try launch(
                bench,
                [
                    "-p", "\(port)", "-c", "\(callers)", "-n", "\(calls)", "-t", test, "-r", "\(arguments.objects)",
                    "--csv",
                ])
            let text = String(decoding: output.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms",...
            for line in text.split(separator: "\n") where !line.hasPrefix("\"test\"") {
                let fields = line.split(separator: ",").map {
                    $0.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                }
                if fields.count >= 7, let rate = Double(fields[1]), let p50 = Double(fields[4]),
                    let p99 = Double(fields[6])
                {
                    redis["\(key)-\(callers)"] = Figures(rate: rate, p50: p50, p99: p99)
                }
            }
        }
    }
} else {
    log(
        "redis-server or redis-benchmark not installed: showing durable alone (apt-get install redis-server redis-tools)"
    )
}

// MARK: table

func cell(_ figures: Figures?) -> String {
    guard let figures else { return String(repeating: " ", count: 28) + "-" }
    return String(format: "%10.0f/s %7.3f %7.3f ms", figures.rate, figures.p50, figures.p99)
}

print("")
print(
    "workload                        callers   durable: rate   p50     p99          redis: rate    p50     p99          rate ratio  p50 ratio"
)
for callers in arguments.callerCounts {
    for (key, name, redisName) in [
        ("noop", "no-op call (Node/Health)", "PING"), ("incr", "durable increment (Counter)", "INCR, fsync always"),
    ] {
        let ours = durable["\(key)-\(callers)"]
        let theirs = redis["\(key)-\(callers)"]
        var ratio = "      -           -"
        if let ours, let theirs {
            ratio = String(format: "%9.2fx  %9.2fx", ours.rate / theirs.rate, ours.p50 / max(theirs.p50, 0.001))
        }
        print(
            "\(name.padding(toLength: 30, withPad: " ", startingAt: 0)) \(String(format: "%7d", callers))   \(cell(ours))   \(cell(theirs))  \(ratio)   (redis: \(redisName))"
        )
    }
}
