import ArgumentParser
import DurableClient
import DurableWire
import Foundation

/// `durable rebalance`: moves slots, with their data, from the nodes that own the most to those that own the fewest
/// until every node owns its share (`Admin/Rebalance`, run by the gateway).
struct RebalanceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rebalance",
        abstract: "Move slots from the most to the least loaded nodes until every node owns its share (online).",
        discussion: """
            The gateway plans rounds of moves from the node that owns the most slots to the one that owns the \
            fewest, each round at most --max-share of the assigned slots, and runs --parallel moves at a time, each \
            as `durable slots move` runs it (calls to a moving slot are told to retry). It stops when the nodes' \
            slot counts differ by at most one, or when a round moved nothing. Each move is printed as it ends. \
            A slot that fails to move stays where it was and is reported; run the command again to retry.
            """
    )

    @Option(name: .customLong("max-share"), help: "The most slots one round moves, as a share of the assigned slots.")
    var maxShare: Double = 0.1

    @Option(help: "Moves running at once.")
    var parallel: UInt32 = 4

    @Flag(name: .customLong("dry-run"), help: "Print the first round's moves; move nothing.")
    var dryRun = false

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func validate() throws {
        guard maxShare > 0, maxShare <= 1 else {
            throw ValidationError("--max-share must be above 0 and at most 1, not \(maxShare).")
        }
        guard parallel >= 1 else { throw ValidationError("--parallel must be at least 1.") }
    }

    func run() async throws {
        let dryRun = self.dryRun
        let response = try await withAdminConnection(admin) { connection in
            try Durable_V1_RebalanceResponse(
                serializedBytes: try await connection.callStreaming(
                    Methods.adminRebalance,
                    try Durable_V1_RebalanceRequest.with {
                        $0.maxShare = maxShare
                        $0.parallel = parallel
                        $0.dryRun = dryRun
                    }.serializedBytes()
                ) { bytes in
                    guard let progress = try? Durable_V1_RebalanceProgress(serializedBytes: bytes) else { return }
                    Self.report(progress, dryRun: dryRun)
                })
        }
        let nodes = response.nodes.map { "\($0.nodeID) \($0.slots)" }.joined(separator: ", ")
        if dryRun {
            print("dry run: nothing moved; slots per node now: \(nodes)")
            return
        }
        print("rebalanced in \(response.rounds) rounds: \(response.moved) slots moved; slots per node: \(nodes)")
        if response.failed > 0 {
            throw CommandError("\(response.failed) slots did not move (run the command again to retry them).")
        }
    }

    /// Prints one move (a failed one on standard error).
    static func report(_ progress: Durable_V1_RebalanceProgress, dryRun: Bool) {
        let prefix =
            "round \(progress.round) [\(progress.index)/\(progress.planned)] slot \(progress.slot) "
            + "\(progress.fromNode) → \(progress.toNode)"
        if dryRun {
            print(prefix)
        } else if progress.error.isEmpty {
            print(
                prefix + ": \(progress.moved.objects) objects, \(progress.moved.bytes) bytes, "
                    + String(format: "%.1f ms", Double(progress.moved.unavailableMicros) / 1000)
                    + progress.moved.stepsText)
        } else {
            FileHandle.standardError.write(Data((prefix + ": \(progress.error)\n").utf8))
        }
        fflush(nil)
    }
}
