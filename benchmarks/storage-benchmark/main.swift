// Synced writes per second through the group committer, beside one fsync per write, with 1, 8 and 64
// concurrent writers, in one run. Run it with `make bench-storage` (a release build).
//
//   storage-benchmark [--seconds S] [--writers 1,8,64] [--dir FOLDER]

import DurableStorage
import Foundation
import Synchronization

struct Arguments {
    var seconds = 3.0
    var writerCounts = [1, 8, 64]
    var folder = FileManager.default.temporaryDirectory.path

    init() {
        var arguments = CommandLine.arguments.dropFirst().makeIterator()
        while let argument = arguments.next() {
            switch argument {
            case "--seconds": seconds = Double(arguments.next() ?? "") ?? seconds
            case "--writers": writerCounts = (arguments.next() ?? "").split(separator: ",").compactMap { Int($0) }
            case "--dir": folder = arguments.next() ?? folder
            default:
                FileHandle.standardError.write(Data("unknown argument \(argument)\n".utf8))
                exit(2)
            }
        }
    }
}

let arguments = Arguments()
let value = [UInt8](repeating: 0x61, count: 100)

/// A database in a fresh folder, removed afterwards.
func withScratchDatabase<R>(_ body: (Database, ColumnFamily) async throws -> R) async throws -> R {
    let path = (arguments.folder as NSString).appendingPathComponent("durable-bench-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(atPath: path) }
    let database = try Database(path: path)
    defer { database.close() }
    return try await body(database, try database.ensureColumnFamily(named: "bench"))
}

func key(_ writer: Int, _ index: Int) -> [UInt8] { Array("w\(writer)-\(index % 1000)".utf8) }

/// Writes per second when every writer hands single-put batches to the group committer.
func groupCommitRate(writers: Int) async throws -> (rate: Double, perSync: Double) {
    try await withScratchDatabase { database, family in
        let committer = GroupCommitter(database: database)
        let deadline = ContinuousClock.now + .seconds(arguments.seconds)
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var count = 0
                    while ContinuousClock.now < deadline {
                        var batch = WriteBatch()
                        batch.put(value, forKey: key(writer, count), in: family)
                        try await committer.commit(batch)
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        let statistics = committer.statistics
        log(
            String(
                format: "    %d groups, mean synced write %.3f ms", statistics.groups,
                Double(statistics.syncNanoseconds) / Double(max(1, statistics.groups)) / 1e6))
        return (Double(total) / arguments.seconds, Double(statistics.batches) / Double(max(1, statistics.groups)))
    }
}

/// Writes per second when each write does its own synced write, one at a time (what a writer gets without
/// group commit). The writers are real threads taking turns on a lock.
func oneSyncPerWriteRate(writers: Int) async throws -> Double {
    try await withScratchDatabase { database, family in
        let lock = NSLock()
        let total = Atomic<Int>(0)
        let deadline = Date().addingTimeInterval(arguments.seconds)
        let finished = DispatchGroup()
        for writer in 0..<writers {
            finished.enter()
            Thread.detachNewThread {
                var count = 0
                while Date() < deadline {
                    var batch = WriteBatch()
                    batch.put(value, forKey: key(writer, count), in: family)
                    lock.lock()
                    try! database.write(batch, sync: true)
                    lock.unlock()
                    count += 1
                }
                total.add(count, ordering: .relaxed)
                finished.leave()
            }
        }
        finished.wait()
        return Double(total.load(ordering: .relaxed)) / arguments.seconds
    }
}

func log(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

log("storage-benchmark: \(arguments.seconds) s per measurement, 100-byte values, synced WAL, in \(arguments.folder)")
var rows: [(writers: Int, group: Double, perSync: Double, single: Double)] = []
for writers in arguments.writerCounts {
    log("  \(writers) writer(s): group committer…")
    let group = try await groupCommitRate(writers: writers)
    log("  \(writers) writer(s): one sync per write…")
    let single = try await oneSyncPerWriteRate(writers: writers)
    rows.append((writers, group.rate, group.perSync, single))
}

print("")
print("synced writes/s        group commit   one sync per write   ratio   batches per fsync")
for row in rows {
    print(
        String(
            format: "%3d writer(s)          %12.0f   %18.0f   %5.1fx   %17.1f",
            row.writers, row.group, row.single, row.group / row.single, row.perSync))
}
