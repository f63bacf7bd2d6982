import DurableStorage
import Foundation
import Testing
import WireTestSupport

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
            let (acks, reason) = try await offPool { try Self.runAndKill(path: path, run: run, afterAcks: target) }
            #expect(reason == .uncaughtSignal, "the writer must have been killed, not exited")
            #expect(acks.count >= target, "round \(run): the writer stopped early")
            acknowledged.formUnion(acks)

            let stored = try storedBatches(path: path)
            for (batch, keyCount) in stored {
                #expect(keyCount == Self.keysPerBatch, "\(batch) is partial: \(keyCount) of \(Self.keysPerBatch) keys")
            }
            let missing = acknowledged.subtracting(stored.keys)
            #expect(missing.isEmpty, "acknowledged but lost: \(missing.prefix(5))")
        }
    }

    /// Starts the writer, waits for `afterAcks` acknowledgements (then a random extra pause of up to 2 ms), kills
    /// it with SIGKILL, and returns every acknowledgement it printed before it died.
    private static func runAndKill(path: String, run: Int, afterAcks: Int) throws
        -> (Set<BatchID>, Process.TerminationReason)
    {
        let process = Process()
        process.executableURL = DurableExecutable.url
        process.arguments = [
            "debug-crash-writer", "--data", path, "--run", "r\(run)", "--keys", "\(Self.keysPerBatch)",
        ]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let reader = LineReader(pipe.fileHandleForReading)
        var acks = Set<BatchID>()
        var killed = false
        while let line = reader.nextLine() {
            let fields = line.split(separator: " ")
            if fields.count == 3, fields[0] == "ack", let writer = Int(fields[1]), let index = Int(fields[2]) {
                acks.insert(BatchID(run: run, writer: writer, index: index))
            }
            if !killed && acks.count >= afterAcks {
                usleep(UInt32.random(in: 0...2_000))
                kill(process.processIdentifier, SIGKILL)
                killed = true
            }
        }
        process.waitUntilExit()
        return (acks, process.terminationReason)
    }

    /// Every batch found on disk, with how many of its keys are there; checks each key's value as it goes.
    private func storedBatches(path: String) throws -> [BatchID: Int] {
        let db = try Database(path: path)
        defer { db.close() }
        var batches: [BatchID: Int] = [:]
        for entry in try db.scan(in: try db.columnFamily(named: "crash")) {
            let key = String(decoding: entry.key, as: UTF8.self)
            let parts = key.split(separator: "/")
            guard parts.count == 4, let run = Int(parts[0].dropFirst()), let writer = Int(parts[1].dropFirst()),
                let index = Int(parts[2].dropFirst())
            else {
                Issue.record("a key that was never written: \(key)")
                continue
            }
            #expect(String(decoding: entry.value, as: UTF8.self) == "\(writer)/\(index)", "value of \(key)")
            batches[BatchID(run: run, writer: writer, index: index), default: 0] += 1
        }
        return batches
    }
}
