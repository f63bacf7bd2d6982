import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// A short run of the fault harness: a gateway and three nodes (real processes) under load from eight clients,
    /// while a node is killed, the gateway is killed, and a node is paused. The longer run is `scripts/chaos.sh`.
    @Suite("Faults: kills and pauses under load (real processes)")
    struct ChaosTests {
        struct Summary: Decodable {
            struct Round: Decodable {
                var fault: String
                var target: String
                var operations: [String: Int]
            }
            struct Findings: Decodable {
                var lostAcknowledgedWrites: Int
                var phantomWrites: Int
                var partialBatches: Int
                var problems: [String]
            }
            var rounds: [Round]
            var acknowledgedWrites: Int
            var registersChecked: Int
            var registersLinearizable: Int
            var findings: Findings
        }

        @Test("no acknowledged write is lost, batches stay whole, and every register history is linearizable")
        func killsAndPauses() async throws {
            let folder = TemporaryDirectory("chaos")
            let json = folder.child("summary.json")
            let chaos = BuiltExecutable.named("durable-chaos")
            let result = try await ChildProcess.run(
                chaos, ["--rounds", "3", "--round-seconds", "2", "--data", folder.child("cluster"), "--json", json])
            #expect(result.status == 0, "\(result.errors)")
            let summary = try JSONDecoder().decode(Summary.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
            #expect(summary.rounds.map(\.fault) == ["kill-node", "kill-gateway", "pause-node"])
            #expect(summary.acknowledgedWrites > 100, "the clients got work done: \(summary.acknowledgedWrites)")
            for round in summary.rounds {
                #expect((round.operations["ok"] ?? 0) > 0, "\(round.fault): \(round.operations)")
            }
            #expect(summary.findings.lostAcknowledgedWrites == 0)
            #expect(summary.findings.phantomWrites == 0)
            #expect(summary.findings.partialBatches == 0)
            #expect(summary.findings.problems.isEmpty, "\(summary.findings.problems)")
            #expect(summary.registersChecked == 9)
            #expect(summary.registersLinearizable == 9)
        }
    }
}
