import Foundation
import TestSupport
import Testing

/// What replication to a standby costs: durable increments through a gateway to one node, then to a node with a
/// standby (`--replication sync`, both on this machine), in one run, twice each in turn. Prints the throughput and
/// latency of each and their ratios. Runs only with `DURABLE_REPLICATION_BENCHMARK=1` (`make bench-replication`);
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

    /// Starts a gateway and node1 (and node2 as its standby when `standby`), runs the load, stops them.
    static func measure(standby: Bool, round: Int, rate: Int? = nil) async throws -> LoadReport {
        let folder = TemporaryDirectory("replication-bench")
        let gateway = try await ServerProcess.gateway(dataDirectory: folder.child("gateway"))
        var processes = [gateway]
        defer { for process in processes { Task { _ = await process.stop() } } }
        let primary = try await ServerProcess.node(
            dataDirectory: folder.child("node1"),
            arguments: ["--node-id", "node1", "--gateway", "127.0.0.1:\(gateway.port)", "--log-level", "notice"])
        processes.append(primary)
        if standby {
            processes.append(
                try await ServerProcess.node(
                    dataDirectory: folder.child("node2"),
                    arguments: [
                        "--node-id", "node2", "--standby-for", "node1", "--primary", "127.0.0.1:\(primary.port)",
                    ]))
            #expect(await eventually(timeout: .seconds(60)) { primary.child.errorText.contains("standby in step") })
        }
        let json = folder.child("load.json")
        let outcome = try await ChildProcess.run(
            BuiltExecutable.named("durable-load"),
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
                rate.map { "open loop at \($0)/s" } ?? "closed loop", standby ? "with a standby" : "one node",
                report.throughput, report.latency_ms["p50"] ?? 0,
                report.latency_ms["p99"] ?? 0, report.errors.values.reduce(0, +)))
        for process in processes { _ = await process.stop() }
        processes = []
        return report
    }

    @Test("durable increments with and without a standby, in one run")
    func compare() async throws {
        var alone: [LoadReport] = []
        var replicated: [LoadReport] = []
        for round in 1...2 {
            alone.append(try await Self.measure(standby: false, round: round))
            replicated.append(try await Self.measure(standby: true, round: round))
        }
        func mean(_ reports: [LoadReport], _ value: (LoadReport) -> Double) -> Double {
            reports.map(value).reduce(0, +) / Double(reports.count)
        }
        let throughput = (mean(alone) { $0.throughput }, mean(replicated) { $0.throughput })
        let p50 = (mean(alone) { $0.latency_ms["p50"] ?? 0 }, mean(replicated) { $0.latency_ms["p50"] ?? 0 })
        let p99 = (mean(alone) { $0.latency_ms["p99"] ?? 0 }, mean(replicated) { $0.latency_ms["p99"] ?? 0 })
        print(
            String(
                format: """
                    replication benchmark (%@ callers, %@ s per run, 1,000 counters, debug build):
                      one node:       %.0f increments/s, p50 %.2f ms, p99 %.2f ms
                      with a standby: %.0f increments/s, p50 %.2f ms, p99 %.2f ms
                      ratio: throughput %.2f×, p50 %+.2f ms, p99 %+.2f ms
                    """, Self.callers, Self.seconds, throughput.0, p50.0, p99.0, throughput.1, p50.1, p99.1,
                throughput.1 / throughput.0, p50.1 - p50.0, p99.1 - p99.0))
        #expect(alone.allSatisfy { $0.completed > 0 } && replicated.allSatisfy { $0.completed > 0 })

        // Latency below saturation: the same calls at a fixed rate, so that the standby's share of this machine's
        // two cores does not show as queueing.
        var openAlone: [LoadReport] = []
        var openReplicated: [LoadReport] = []
        for round in 1...2 {
            openAlone.append(try await Self.measure(standby: false, round: round, rate: Self.rate))
            openReplicated.append(try await Self.measure(standby: true, round: round, rate: Self.rate))
        }
        let openP50 = (
            mean(openAlone) { $0.latency_ms["p50"] ?? 0 }, mean(openReplicated) { $0.latency_ms["p50"] ?? 0 }
        )
        let openP99 = (
            mean(openAlone) { $0.latency_ms["p99"] ?? 0 }, mean(openReplicated) { $0.latency_ms["p99"] ?? 0 }
        )
        print(
            String(
                format: """
                      open loop at %d increments/s: one node p50 %.2f ms, p99 %.2f ms; with a standby p50 %.2f ms, \
                    p99 %.2f ms; p50 %+.2f ms, p99 %+.2f ms
                    """, Self.rate, openP50.0, openP99.0, openP50.1, openP99.1, openP50.1 - openP50.0,
                openP99.1 - openP99.0))
    }
}
