import Foundation
import TestSupport
import Testing

/// What replication to a standby costs: durable increments through a gateway to one node, then to a node with a
/// standby (`--replication sync`, both on this machine), in one run, twice each in turn. Prints the throughput and
/// latency of each and their ratios. A third setup puts the standby's database in memory (`/dev/shm`), where a sync
/// costs nothing: it stands for a standby on a disk of its own, and shows what the protocol costs apart from two
/// syncs queueing on this machine's one disk. Runs only with `DURABLE_REPLICATION_BENCHMARK=1` (`make bench-replication`);
/// it asserts nothing about speed.
@Suite(
    "Replication benchmark", .enabled(if: ProcessInfo.processInfo.environment["DURABLE_REPLICATION_BENCHMARK"] == "1"))
struct ReplicationBenchmark {
    /// The JSON report of one `durable-load` run (the fields used here).
    struct LoadReport: Decodable {
        var completed: Int
        var throughput: Double
        var errors: [String: Int]
        var latency_ms: [String: Double]
    }

    static let seconds = ProcessInfo.processInfo.environment["DURABLE_REPLICATION_SECONDS"] ?? "8"
    static let callers = ProcessInfo.processInfo.environment["DURABLE_REPLICATION_CALLERS"] ?? "32"
    static let rate = Int(ProcessInfo.processInfo.environment["DURABLE_REPLICATION_RATE"] ?? "") ?? 1000
    /// The folder of the `durable` and `durable-load` executables measured: `DURABLE_REPLICATION_BIN` (the
    /// release build, from `make bench-replication`), else this test's own (debug) build.
    static let executables = ProcessInfo.processInfo.environment["DURABLE_REPLICATION_BIN"].map {
        URL(fileURLWithPath: $0)
    }
    static var durable: URL { executables?.appendingPathComponent("durable") ?? BuiltExecutable.durable }
    static var build: String { executables == nil ? "debug build" : "build in \(executables!.path)" }

    /// Where the standby runs, if there is one.
    enum Setup: String {
        case oneNode = "one node"
        case standby = "with a standby"
        case standbyInMemory = "with a standby in /dev/shm"
    }

    /// Starts a gateway and node1 (and node2 as its standby, per `setup`), runs the load, stops them.
    static func measure(_ setup: Setup, round: Int, rate: Int?) async throws -> LoadReport {
        let standby = setup != .oneNode
        let folder = TemporaryDirectory("replication-bench")
        let inMemory = setup == .standbyInMemory ? TemporaryDirectory("replication-bench", in: "/dev/shm") : nil
        let gateway = try await ServerProcess.launch(
            [
                "gateway", "--port", "0", "--rpc-port", "0", "--data", folder.child("gateway"), "--log-level",
                "warning",
            ], dataDirectory: folder.child("gateway"), executable: durable)
        var processes = [gateway]
        defer { for process in processes { Task { _ = await process.stop() } } }
        let primary = try await ServerProcess.node(
            dataDirectory: folder.child("node1"),
            executable: durable,
            arguments: ["--node-id", "node1", "--gateway", "127.0.0.1:\(gateway.port)", "--log-level", "notice"])
        processes.append(primary)
        if standby {
            processes.append(
                try await ServerProcess.node(
                    dataDirectory: (inMemory ?? folder).child("node2"), executable: durable,
                    arguments: [
                        "--node-id", "node2", "--standby-for", "node1", "--primary", "127.0.0.1:\(primary.port)",
                    ]))
            #expect(await eventually(timeout: .seconds(60)) { primary.child.errorText.contains("standby in step") })
        }
        let json = folder.child("load.json")
        let outcome = try await ChildProcess.run(
            executables?.appendingPathComponent("durable-load") ?? BuiltExecutable.named("durable-load"),
            [
                "--rpc", "127.0.0.1:\(gateway.port)", "--workload", "increment", "--objects", "1000",
                "--seconds", seconds, "--warmup", "2", "--json", json,
            ] + (rate.map { ["--rate", "\($0)"] } ?? ["--callers", callers]),
            environment: TestKeys.environment(included: true))
        #expect(outcome.status == 0, "\(outcome.errors)")
        let report = try JSONDecoder().decode(LoadReport.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        if standby {
            // The standby followed throughout: the primary never ran alone.
            #expect(!primary.child.errorText.contains("running without standby"), "\(primary.child.errorText)")
        }
        print(
            String(
                format: "round %d, %@, %@: %.0f increments/s, p50 %.2f ms, p99 %.2f ms, %d errors", round,
                rate.map { "open loop at \($0)/s" } ?? "closed loop", setup.rawValue,
                report.throughput, report.latency_ms["p50"] ?? 0,
                report.latency_ms["p99"] ?? 0, report.errors.values.reduce(0, +)))
        for process in processes { _ = await process.stop() }
        processes = []
        return report
    }

    @Test("durable increments with and without a standby, in one run")
    func compare() async throws {
        let setups: [Setup] = [.oneNode, .standby, .standbyInMemory]
        func mean(_ reports: [LoadReport], _ value: (LoadReport) -> Double) -> Double {
            reports.map(value).reduce(0, +) / Double(reports.count)
        }
        /// Runs every setup twice, in turn; the mean figures of each.
        func measureAll(rate: Int?) async throws -> [(throughput: Double, p50: Double, p99: Double)] {
            var reports = Array(repeating: [LoadReport](), count: setups.count)
            for round in 1...2 {
                for (index, setup) in setups.enumerated() {
                    reports[index].append(try await Self.measure(setup, round: round, rate: rate))
                }
            }
            #expect(reports.allSatisfy { $0.allSatisfy { $0.completed > 0 } })
            return reports.map { runs in
                (
                    mean(runs) { $0.throughput }, mean(runs) { $0.latency_ms["p50"] ?? 0 },
                    mean(runs) { $0.latency_ms["p99"] ?? 0 }
                )
            }
        }
        func lines(_ figures: [(throughput: Double, p50: Double, p99: Double)]) -> String {
            zip(setups, figures).map { setup, figure in
                String(
                    format: "  %@: %.0f increments/s, p50 %.2f ms, p99 %.2f ms", setup.rawValue, figure.throughput,
                    figure.p50, figure.p99)
                    + (setup == .oneNode
                        ? ""
                        : String(
                            format: " (%.2f× throughput, p50 %+.2f ms, p99 %+.2f ms)",
                            figure.throughput / figures[0].throughput, figure.p50 - figures[0].p50,
                            figure.p99 - figures[0].p99))
            }.joined(separator: "\n")
        }
        let closed = try await measureAll(rate: nil)
        // Latency below saturation: the same calls at a fixed rate, so that the standby's share of this machine's
        // two cores does not show as queueing.
        let open = try await measureAll(rate: Self.rate)
        print(
            """
            replication benchmark (1,000 counters, \(Self.seconds) s per run, two runs each, \(Self.build)):
            closed loop, \(Self.callers) callers:
            \(lines(closed))
            open loop at \(Self.rate) increments/s:
            \(lines(open))
            """)
    }
}
