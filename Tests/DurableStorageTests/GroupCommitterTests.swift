import DurableStorage
import TestSupport
import Testing

@Suite("Group committer")
struct GroupCommitterTests {
    struct Refused: Error {}

    @Test("concurrent writers are all durable, and they share synced writes")
    func concurrentWriters() async throws {
        let folder = TemporaryDirectory()
        let path = folder.child("db")
        let writers = 200
        do {
            let db = try Database(path: path)
            let family = try db.defaultColumnFamily
            let committer = GroupCommitter(database: db)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var batch = WriteBatch()
                        batch.put("\(writer)".bytes, forKey: "w\(writer)-a".bytes, in: family)
                        batch.put("\(writer)".bytes, forKey: "w\(writer)-b".bytes, in: family)
                        try await committer.commit(batch)
                    }
                }
                try await group.waitForAll()
            }
            let statistics = committer.statistics
            #expect(statistics.batches == writers)
            #expect(statistics.groups < writers, "\(statistics.groups) synced writes for \(writers) batches")
            #expect(statistics.largestGroup > 1)
            db.close()
        }
        let db = try Database(path: path)
        let entries = try db.scan(in: try db.defaultColumnFamily)
        #expect(entries.count == writers * 2)
    }

    @Test("a failing check refuses only its own batch")
    func checkIsolatesBatch() async throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        let committer = GroupCommitter(database: db)
        var good = WriteBatch()
        good.put("1".bytes, forKey: "good".bytes, in: family)
        var bad = WriteBatch()
        bad.put("1".bytes, forKey: "bad".bytes, in: family)
        async let goodCommit: Void = committer.commit(good)
        let badResult = await Result(catching: { try await committer.commit(bad, check: { throw Refused() }) })
        try await goodCommit
        #expect(throws: Refused.self) { try badResult.get() }
        #expect(try db.get("good".bytes, in: family) == "1".bytes)
        #expect(try db.get("bad".bytes, in: family) == nil)
    }

    @Test("a batch for a dropped column family fails alone, with nothing of it written")
    func droppedFamily() async throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let kept = try db.createColumnFamily(named: "kept")
        let doomed = try db.createColumnFamily(named: "doomed")
        try db.dropColumnFamily(named: "doomed")
        let committer = GroupCommitter(database: db)
        var bad = WriteBatch()
        bad.put("x".bytes, forKey: "k1".bytes, in: kept)
        bad.put("x".bytes, forKey: "k2".bytes, in: doomed)
        let error = await #expect(throws: StorageError.self) { try await committer.commit(bad) }
        #expect(error?.code == .columnFamilyUnavailable)
        #expect(try db.get("k1".bytes, in: kept) == nil)
        var good = WriteBatch()
        good.put("y".bytes, forKey: "k3".bytes, in: kept)
        try await committer.commit(good)
        #expect(try db.get("k3".bytes, in: kept) == "y".bytes)
    }

    @Test("commits after the database closed throw closed")
    func closed() async throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        let committer = GroupCommitter(database: db)
        db.close()
        var batch = WriteBatch()
        batch.put("x".bytes, forKey: "k".bytes, in: family)
        let error = await #expect(throws: StorageError.self) { try await committer.commit(batch) }
        #expect(error?.code == .closed)
    }
}
