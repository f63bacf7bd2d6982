import Foundation
import TestSupport
import Testing

/// Runs `durable-load` (built beside the test binary) and returns its exit status, standard output and error.
private func runLoadGenerator(_ arguments: [String]) async throws -> ChildProcess.Outcome {
    try await ChildProcess.run(
        BuiltExecutable.named("durable-load"), arguments)
}

/// The JSON report of one run.
private struct LoadReport: Decodable {
    var target: String
    var workload: String
    var mode: String
    var completed: Int
    var throughput: Double
    var errors: [String: Int]
    var latency_ms: [String: Double]
    var bystanders: Side?

    /// The `--bystander-rate` stream.
    struct Side: Decodable {
        var completed: Int
        var errors: [String: Int]
        var latency_ms: [String: Double]
    }
}

extension WholeMachineTests {
    /// A short smoke run of every workload of the load generator against a real `durable dev`, so that the
    /// benchmark tool cannot rot. It checks that calls complete and are reported, never how fast they are.
    @Suite("durable-load (smoke runs against durable dev)")
    struct LoadGeneratorTests {
        @Test("every workload completes calls over RPC and HTTP, closed and open loop, and reports them as JSON")
        func everyWorkload() async throws {
            let folder = TemporaryDirectory("load")
            let dev = try await ServerProcess.dev(dataDirectory: folder.child("data"))
            let rpc = "127.0.0.1:\(dev.port)"
            let token = ["--token-file", folder.child("data") + "/secrets/api-token"]
            let http = "http://127.0.0.1:\(dev.httpPort!)"
            let runs: [[String]] = [
                ["--rpc", rpc, "--workload", "increment", "--objects", "20", "--callers", "4"] + token,
                ["--rpc", rpc, "--workload", "hot", "--callers", "2"] + token,
                ["--rpc", rpc, "--workload", "hot", "--rate", "100", "--bystander-rate", "50", "--objects", "5"]
                    + token,
                ["--rpc", rpc, "--workload", "noop", "--rate", "200"] + token,
                ["--rpc", rpc, "--workload", "read", "--objects", "5", "--rate", "100"] + token,
                ["--http", http, "--workload", "increment", "--objects", "10", "--callers", "2"],
                ["--http", http, "--workload", "noop", "--callers", "2"],
                ["--http", http, "--workload", "broadcast", "--listeners", "3", "--callers", "1"],
            ]
            for (index, run) in runs.enumerated() {
                let json = folder.child("run-\(index).json")
                let result = try await runLoadGenerator(run + ["--seconds", "0.5", "--warmup", "0.1", "--json", json])
                #expect(result.status == 0, "\(run): \(result.errors)")
                let report = try JSONDecoder().decode(
                    LoadReport.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
                #expect(report.workload == run[3])
                #expect(report.mode == (run.contains("--rate") ? "open" : "closed"))
                #expect(report.completed > 0, "\(run): \(result.output)")
                #expect(report.errors.isEmpty, "\(run): \(report.errors)")
                #expect(report.throughput > 0)
                #expect((report.latency_ms["p99"] ?? 0) >= (report.latency_ms["p50"] ?? 0))
                #expect(result.output.contains("latency ms: p50"), "\(result.output)")
                if run.contains("--bystander-rate") {
                    let side = try #require(report.bystanders, "\(result.output)")
                    #expect(side.completed > 0 && side.errors.isEmpty, "\(side)")
                    #expect(result.output.contains("bystanders (other objects, 50/s offered)"), "\(result.output)")
                }
                #expect(result.errors.contains("measuring") || result.errors.contains("against"), "\(result.errors)")
            }
            #expect(await dev.interrupt() == 0)
        }

        @Test("bad arguments and an unreachable target are refused with a message naming the problem")
        func badInput() async throws {
            let both = try await runLoadGenerator(["--rpc", "127.0.0.1:1", "--http", "http://127.0.0.1:1"])
            #expect(both.status != 0)
            #expect(both.errors.contains("Give exactly one of --rpc and --http."), "\(both.errors)")
            let broadcast = try await runLoadGenerator(["--rpc", "127.0.0.1:1", "--workload", "broadcast"])
            #expect(broadcast.status != 0)
            #expect(broadcast.errors.contains("use --http"), "\(broadcast.errors)")
            let address = try await runLoadGenerator(["--rpc", "nowhere"])
            #expect(address.status != 0)
            #expect(address.errors.contains("'nowhere' is not HOST:PORT."), "\(address.errors)")
            // Port 1 on loopback: nothing listens there.
            let unreachable = try await runLoadGenerator(["--rpc", "127.0.0.1:1", "--seconds", "0.2"])
            #expect(unreachable.status != 0)
            #expect(unreachable.errors.contains("127.0.0.1:1"), "\(unreachable.errors)")
        }
    }
}
