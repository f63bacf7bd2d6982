import ArgumentParser
import DurableStorage
import Foundation

/// `durable storage-check`: opens (or creates) a database, commits synced batches from concurrent writers
/// through the group committer, and prints what it measured. A quick way to see that the storage engine works
/// on a machine.
struct StorageCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage-check",
        abstract: "Write synced batches through the group committer and report the rate."
    )

    @Option(help: "The database folder (created when missing; a temporary folder when omitted).")
    var data: String?

    @Option(help: "Concurrent writers.")
    var writers: Int = 64

    @Option(help: "Batches each writer commits.")
    var batches: Int = 200

    func validate() throws {
        guard writers > 0 else { throw ValidationError("--writers must be at least 1") }
        guard batches > 0 else { throw ValidationError("--batches must be at least 1") }
    }

    func run() async throws {
        let path =
            data
            ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("durable-storage-check-\(UUID().uuidString)").path
        defer { if data == nil { try? FileManager.default.removeItem(atPath: path) } }
        let database = try Database(path: path)
        defer { database.close() }
        let family = try database.ensureColumnFamily(named: "storage-check")
        let committer = GroupCommitter(database: database)
        print("storage-check: \(writers) writers × \(batches) synced batches into \(path)")

        let started = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    for index in 0..<batches {
                        var batch = WriteBatch()
                        batch.put(Array("\(index)".utf8), forKey: Array("writer-\(writer)".utf8), in: family)
                        try await committer.commit(batch)
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let statistics = committer.statistics
        let total = writers * batches
        print(
            String(
                format:
                    "storage-check: %d batches in %.2f s = %.0f synced batches/s, %d fsyncs (%.1f batches per fsync)",
                total, seconds, Double(total) / seconds, statistics.groups,
                Double(statistics.batches) / Double(max(1, statistics.groups))))
        for writer in 0..<writers {
            let stored = try database.get(Array("writer-\(writer)".utf8), in: family)
            guard stored == Array("\(batches - 1)".utf8) else {
                throw ValidationError("writer \(writer): the last value read back is not the last value written")
            }
        }
        print("storage-check: every writer's last value read back: OK")
    }
}
