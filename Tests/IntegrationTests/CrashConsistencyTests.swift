import DurableStorage
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// A child process commits synced batches through the group committer and acknowledges each one; the test kills
    /// it with SIGKILL at a random moment and checks the database against the acknowledgements.
    @Suite("Crash consistency of the group committer")
    struct CrashConsistencyTests {
        static let keysPerBatch = 8

        struct BatchID: Hashable, CustomStringConvertible {
            var run: Int
            var writer: Int
            var index: Int
            var description: String { "run \(run) writer \(writer) batch \(index)" }
        }

        @Test("after SIGKILL every acknowledged batch is whole and no batch is partial", arguments: 1...3)
        func killAndReopen(attempt: Int) async throws {
            let folder = TemporaryDirectory("crash")
            let path = folder.child("db")
            var acknowledged = Set<BatchID>()
            var generator = SystemRandomNumberGenerator()

            for run in 0..<3 {
                let target = Int.random(in: 1...2_000, using: &generator)
                let (acks, signalled) = try await Self.runAndKill(path: path, run: run, afterAcks: target)
                #expect(signalled, "the writer must have been killed, not exited")
                #expect(acks.count >= target, "round \(run): the writer stopped early")
                acknowledged.formUnion(acks)

                let (stored, problems) = try await offPool { try Self.storedBatches(path: path) }
                #expect(problems.isEmpty, "\(problems.prefix(5))")
                for (batch, keyCount) in stored {
                    #expect(
                        keyCount == Self.keysPerBatch, "\(batch) is partial: \(keyCount) of \(Self.keysPerBatch) keys")
                }
                let missing = acknowledged.subtracting(stored.keys)
                #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(5))")
            }
        }

        /// Starts the writer, waits until it printed `afterAcks` acknowledgements, kills it with SIGKILL (it goes on
        /// writing meanwhile, so the kill lands at a moment of its own), and returns every acknowledgement it printed
        /// before it died and whether a signal ended it.
        private static func runAndKill(path: String, run: Int, afterAcks: Int) async throws -> (Set<BatchID>, Bool) {
            let writer = try await offPool {
                try ChildProcess(
                    BuiltExecutable.testServer,
                    ["debug-crash-writer", "--data", path, "--run", "r\(run)", "--keys", "\(Self.keysPerBatch)"])
            }
            #expect(
                await eventually {
                    writer.outputLines.lazy.filter { $0.hasPrefix("ack ") }.count >= afterAcks || !writer.isRunning
                })
            writer.send(SIGKILL)
            let outcome = try await writer.outcome()
            var acks = Set<BatchID>()
            for line in outcome.output.split(separator: "\n") {
                let fields = line.split(separator: " ")
                if fields.count == 3, fields[0] == "ack", let writer = Int(fields[1]), let index = Int(fields[2]) {
                    acks.insert(BatchID(run: run, writer: writer, index: index))
                }
            }
            return (acks, outcome.signalled)
        }

        /// Every batch found on disk, with how many of its keys are there, and what is wrong with any key or value
        /// (read on a thread of its own: opening RocksDB blocks).
        private static func storedBatches(path: String) throws -> (batches: [BatchID: Int], problems: [String]) {
            let db = try Database(path: path)
            defer { db.close() }
            var batches: [BatchID: Int] = [:]
            var problems: [String] = []
            for entry in try db.scan(in: try db.columnFamily(named: "crash")) {
                let key = String(decoding: entry.key, as: UTF8.self)
                let parts = key.split(separator: "/")
                guard parts.count == 4, let run = Int(parts[0].dropFirst()), let writer = Int(parts[1].dropFirst()),
                    let index = Int(parts[2].dropFirst())
                else {
                    problems.append("a key that was never written: \(key)")
                    continue
                }
                let value = String(decoding: entry.value, as: UTF8.self)
                if value != "\(writer)/\(index)" { problems.append("\(key) holds \(value)") }
                batches[BatchID(run: run, writer: writer, index: index), default: 0] += 1
            }
            return (batches, problems)
        }
    }
}
