import DurableClient
import DurableObjects
import Foundation
import Synchronization
import TestSupport
import Testing

/// Not part of any test pass: `make bench-rebalance` runs it (`DURABLE_REBALANCE_BENCHMARK=1`). A gateway and three
/// nodes hold 20,000 counters and some registers with long logs (slots from a few hundred bytes to about a
/// megabyte); a fourth node joins and `durable rebalance` runs to the end while clients increment counters. It prints
/// how long calls to each moved slot were refused (the mover's figure, from marking the slot moving to recording its
/// new owner) by slot size, and checks that every node ends with 1024 ± 41 slots and every counter with every
/// acknowledged increment.
@Suite("Rebalance benchmark: 20,000 objects, a fourth node")
struct RebalanceBenchmark {
    /// Objects (`DURABLE_REBALANCE_OBJECTS` to try another count; the figures of the notes are at 20,000).
    static let objects = Int(ProcessInfo.processInfo.environment["DURABLE_REBALANCE_OBJECTS"] ?? "") ?? 20_000

    @Test(
        "a fourth node gets its share of 20,000 objects' slots under load; unavailability per move by slot size",
        .enabled(
            if: ProcessInfo.processInfo.environment["DURABLE_REBALANCE_BENCHMARK"] == "1",
            "a benchmark: make bench-rebalance, or DURABLE_REBALANCE_BENCHMARK=1 swift test --filter RebalanceBenchmark"
        ),
        .timeLimit(.minutes(30)))
    func fourthNode() async throws {
        try await withTestCluster(nodes: 3, label: "rebalance-bench") { cluster in
            let gateway = "127.0.0.1:\(try cluster.gateway.port)"
            let client = DurableClient(
                host: "127.0.0.1", port: try cluster.gateway.port, connections: 4, defaultTimeout: .seconds(30),
                credentials: TestKeys.api)
            let counters = try await client.namespace("COUNTER")
            let registers = try await client.namespace("REGISTERS")
            let names = (0..<Self.objects).map { "bench-\($0)" }
            let started = ContinuousClock.now
            try await Self.concurrently(names, width: 32) { name in
                _ = try await counters.getByName(name).fetch("http://c/increment")
            }
            // Registers with logs of 1 KB entries: slots of about 10 KB, 100 KB and 1 MB.
            let entry = String(repeating: "x", count: 1_000)
            let logs = [(10, 8), (100, 4), (1_000, 2)].flatMap { entries, count in
                (0..<count).map { ("log-\(entries)-\($0)", entries) }
            }
            try await Self.concurrently(logs, width: 8) { name, entries in
                for _ in 0..<entries {
                    _ = try await registers.getByName(name).fetch("http://r/log/append?value=\(entry)", method: .post)
                }
            }
            print("seeded \(Self.objects) counters and \(logs.count) logs in \(ContinuousClock.now - started)")
            let before = try await WholeMachineTests.SlotRebalanceTests.slotCounts(gateway)
            print("slots per node before: \(before.sorted { $0.key < $1.key })")

            try await cluster.startNode(4)
            let (rebalance, load) = try await WholeMachineTests.SlotRebalanceTests.underLoad(
                counters, Array(names.shuffled().prefix(2_000))
            ) {
                try await ChildProcess.run(
                    BuiltExecutable.durable, ["rebalance", "--gateway", gateway],
                    environment: TestKeys.environment(included: true), timeLimit: .seconds(1_500))
            }
            #expect(rebalance.status == 0, "\(rebalance.errors)")
            print(rebalance.output.split(separator: "\n").last.map(String.init) ?? "")
            #expect(load.failed.isEmpty, "only retryable refusals: \(load.failed.prefix(5))")
            print(
                "during the rebalance: \(load.acknowledged.values.reduce(0, +)) increments acknowledged, "
                    + "\(load.refused) refused retryably")
            let after = try await WholeMachineTests.SlotRebalanceTests.slotCounts(gateway)
            print("slots per node after: \(after.sorted { $0.key < $1.key })")
            if Self.objects >= 20_000 {
                #expect(
                    after.count == 4 && after.values.allSatisfy { (1024 - 41...1024 + 41).contains($0) }, "\(after)")
            }
            #expect(after.values.max()! - after.values.min()! <= 1, "\(after)")

            var moves = Self.moves(in: rebalance.output)
            // The big slots move once more (under the same load) so that every size is measured.
            let (extra, extraLoad) = try await WholeMachineTests.SlotRebalanceTests.underLoad(
                counters, Array(names.prefix(2_000))
            ) {
                var lines: [String] = []
                for (name, _) in logs {
                    let slot = PlacementEpochs.slot(of: registers.idFromName(name))
                    let owner = try await Self.owner(of: slot, gateway: gateway)
                    let target = ["node1", "node2", "node3", "node4"].first { $0 != owner }!
                    let move = try await ChildProcess.run(
                        BuiltExecutable.durable, ["slots", "move", "\(slot)", "--to", target, "--gateway", gateway],
                        environment: TestKeys.environment(included: true))
                    lines.append(move.output)
                }
                return lines
            }
            #expect(extraLoad.failed.isEmpty)
            let acknowledgedAll = load.acknowledged.merging(extraLoad.acknowledged, uniquingKeysWith: +)
            moves += extra.compactMap(Self.singleMove(in:))
            Self.printTable(moves)
            print(
                "slowest moves:\n  "
                    + moves.sorted { $0.milliseconds > $1.milliseconds }.prefix(5).map(\.line).joined(separator: "\n  ")
            )

            // Every counter answers its seed increment and every acknowledged one.
            let wrong = Mutex<[String]>([])
            try await Self.concurrently(names, width: 32) { name in
                let stored = Int(try await counters.getByName(name).fetch("http://c/").text()) ?? -1
                if stored != 1 + (acknowledgedAll[name] ?? 0) { wrong.withLock { $0.append("\(name): \(stored)") } }
            }
            #expect(wrong.withLock { $0 }.isEmpty, "\(wrong.withLock { $0.prefix(10) })")
            print("every one of \(Self.objects) counters holds every acknowledged increment")
            await client.close()
        }
    }

    /// One moved slot: its bytes and how long calls to it were refused.
    struct Move {
        var bytes: Int
        var milliseconds: Double
        /// The line it was printed on (with the time of each step).
        var line: String
    }

    /// The moves `durable rebalance` printed (`… slot S a → b: N objects, B bytes, T ms`).
    static func moves(in output: String) -> [Move] {
        output.split(separator: "\n").compactMap { singleMove(in: String($0)) }
    }

    /// The move `durable slots move` printed (`moved slot S from a to b at epoch E: N objects, R rows, B bytes;
    /// calls to it waited T ms`), or one line of `durable rebalance` (`… N objects, B bytes, T ms`).
    static func singleMove(in output: String) -> Move? {
        let words = output.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard let bytesIndex = words.firstIndex(where: { $0.hasPrefix("bytes") }), bytesIndex > 0,
            let bytes = Int(words[bytesIndex - 1]), let msIndex = words[bytesIndex...].firstIndex(of: "ms"),
            let milliseconds = Double(words[msIndex - 1])
        else { return nil }
        return Move(bytes: bytes, milliseconds: milliseconds, line: output)
    }

    /// Prints p50, p99 and the longest refusal per slot size.
    static func printTable(_ moves: [Move]) {
        let buckets: [(String, ClosedRange<Int>)] = [
            ("< 1 KB", 0...1_023), ("1–10 KB", 1_024...10_239), ("10–100 KB", 10_240...102_399),
            ("100 KB–1 MB", 102_400...1_048_575), ("≥ 1 MB", 1_048_576...Int.max),
        ]
        print("| slot size | moves | unavailable p50 | p99 | max |")
        print("|---|---|---|---|---|")
        for (label, range) in buckets {
            let times = moves.filter { range.contains($0.bytes) }.map(\.milliseconds).sorted()
            guard !times.isEmpty else { continue }
            func percentile(_ share: Double) -> String {
                String(format: "%.1f ms", times[min(times.count - 1, Int(Double(times.count - 1) * share + 0.5))])
            }
            print("| \(label) | \(times.count) | \(percentile(0.5)) | \(percentile(0.99)) | \(percentile(1)) |")
        }
    }

    static func owner(of slot: UInt16, gateway: String) async throws -> String {
        try await SlotListing.read(gateway: gateway)?.slots[slot]?.node ?? ""
    }

    /// Runs `body` on every element, `width` at a time.
    static func concurrently<Element: Sendable>(
        _ elements: [Element], width: Int, _ body: @escaping @Sendable (Element) async throws -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var iterator = elements.makeIterator()
            for _ in 0..<width {
                guard let next = iterator.next() else { break }
                group.addTask { try await body(next) }
            }
            while try await group.next() != nil {
                guard let next = iterator.next() else { continue }
                group.addTask { try await body(next) }
            }
        }
    }
}
