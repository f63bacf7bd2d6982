import ArgumentParser
import DurableStorage
import Foundation
import Synchronization

/// `durable-test-server debug-crash-writer`: a child process for the crash-consistency test. It commits synced batches
/// through the group committer from concurrent writers, forever, and prints `ack WRITER INDEX` on its own line
/// only after batch `INDEX` of `WRITER` is durable. The test kills it at a random moment and checks the database
/// against the acknowledgements.
///
/// Batch `INDEX` of `WRITER` puts `KEYS` keys `<RUN>/w<WRITER>/b<INDEX>/k<J>` in the column family `crash`, each
/// with the value `<WRITER>/<INDEX>`.
struct CrashWriterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "debug-crash-writer",
        abstract: "Commit synced batches until killed, acknowledging each on standard output (for tests).",
        shouldDisplay: false
    )

    @Option(help: "The database folder.")
    var data: String

    @Option(help: "Concurrent writers.")
    var writers: Int = 16

    @Option(help: "Keys in each batch.")
    var keys: Int = 8

    @Option(name: .customLong("run"), help: "A label put in front of every key, so that runs can share a database.")
    var runLabel: String = "run"

    func run() async throws {
        try await writeUntilKilled()
    }

    /// Commits and acknowledges batches until the process is killed.
    func writeUntilKilled() async throws {
        let database = try Database(path: data)
        let family = try database.ensureColumnFamily(named: "crash")
        let committer = GroupCommitter(database: database)
        let output = LineWriter()
        let keys = self.keys
        let run = runLabel
        output.write("ready")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var index = 0
                    while true {
                        var batch = WriteBatch()
                        let value = Array("\(writer)/\(index)".utf8)
                        for key in 0..<keys {
                            batch.put(value, forKey: Array("\(run)/w\(writer)/b\(index)/k\(key)".utf8), in: family)
                        }
                        try await committer.commit(batch)
                        output.write("ack \(writer) \(index)")
                        index += 1
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}

/// Writes whole lines to standard output with one `write(2)` each, unbuffered, so that a line printed before
/// the process is killed is never lost or torn.
final class LineWriter: Sendable {
    private let lock = Mutex(())

    func write(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        lock.withLock { _ in
            bytes.withUnsafeBytes { buffer in _ = Foundation.write(STDOUT_FILENO, buffer.baseAddress, buffer.count) }
        }
    }
}
