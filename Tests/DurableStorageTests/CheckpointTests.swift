import DurableStorage
import Foundation
import TestSupport
import Testing

@Suite("Checkpoints for backups")
struct CheckpointTests {
    @Test("a checkpoint holds every write made before it, synced or not, in every column family, and none after")
    func pointInTime() async throws {
        let folder = TemporaryDirectory("checkpoint")
        let db = try Database(path: folder.child("db"))
        let objects = try db.createColumnFamily(named: "ns:objects")
        let meta = try db.defaultColumnFamily
        var before = WriteBatch()
        before.put("1".bytes, forKey: "counter".bytes, in: objects)
        before.put("first".bytes, forKey: "name/x".bytes, in: meta)
        try db.write(before, sync: true)
        // Only in the memtable and the write-ahead log: the checkpoint must still hold it.
        var unsynced = WriteBatch()
        unsynced.put("kept".bytes, forKey: "unsynced".bytes, in: objects)
        try db.write(unsynced, sync: false)

        let report = try await db.writeCheckpoint(into: folder.child("backup/nodes/node1"))
        #expect(report.path == folder.child("backup/nodes/node1"))
        #expect(report.files > 0 && report.bytes > 0, "\(report)")

        var after = WriteBatch()
        after.put("2".bytes, forKey: "counter".bytes, in: objects)
        after.put("too late".bytes, forKey: "later".bytes, in: objects)
        after.delete("name/x".bytes, in: meta)
        try db.write(after, sync: true)
        db.close()

        let copy = try Database(path: report.path)
        let copied = try copy.columnFamily(named: "ns:objects")
        #expect(
            try copy.scan(in: copied) == [
                KeyValue(key: "counter".bytes, value: "1".bytes),
                KeyValue(key: "unsynced".bytes, value: "kept".bytes),
            ])
        #expect(try copy.get("name/x".bytes, in: copy.defaultColumnFamily) == "first".bytes)
        copy.close()

        // The live database goes on with the later writes.
        let reopened = try Database(path: folder.child("db"))
        #expect(try reopened.get("counter".bytes, in: reopened.columnFamily(named: "ns:objects")) == "2".bytes)
    }

    @Test("a checkpoint into an existing folder is refused, naming it, and leaves the folder as it was")
    func existingTargetRefused() async throws {
        let folder = TemporaryDirectory("checkpoint-exists")
        let db = try Database(path: folder.child("db"))
        var batch = WriteBatch()
        batch.put("v".bytes, forKey: "k".bytes, in: try db.defaultColumnFamily)
        try db.write(batch, sync: true)
        let target = folder.child("backup/gateway")
        try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        try Data("mine".utf8).write(to: URL(fileURLWithPath: target + "/note"))

        let error = await #expect(throws: StorageError.self) { try await db.writeCheckpoint(into: target) }
        #expect(error?.message == "\(target) exists already: a checkpoint is written into a new folder")
        #expect(try FileManager.default.contentsOfDirectory(atPath: target) == ["note"])
    }
}
