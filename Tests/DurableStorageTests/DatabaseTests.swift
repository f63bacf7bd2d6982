import DurableStorage
import Foundation
import TestSupport
import Testing

@Suite("Database")
struct DatabaseTests {
    @Test("put, get, delete and multi-get round trip")
    func roundTrip() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        var batch = WriteBatch()
        batch.put("one".bytes, forKey: "a".bytes, in: family)
        batch.put("two".bytes, forKey: "b".bytes, in: family)
        batch.put([], forKey: "empty".bytes, in: family)
        try db.write(batch, sync: true)

        #expect(try db.get("a".bytes, in: family) == "one".bytes)
        #expect(try db.get("empty".bytes, in: family) == [])
        #expect(try db.get("missing".bytes, in: family) == nil)
        #expect(try db.multiGet(["b", "missing", "a"].map(\.bytes), in: family) == ["two".bytes, nil, "one".bytes])

        var delete = WriteBatch()
        delete.delete("a".bytes, in: family)
        try db.write(delete, sync: false)
        #expect(try db.get("a".bytes, in: family) == nil)

        let binaryKey: [UInt8] = [0, 255, 0, 1]
        var binary = WriteBatch()
        binary.put([0, 0, 0], forKey: binaryKey, in: family)
        try db.write(binary, sync: false)
        #expect(try db.get(binaryKey, in: family) == [0, 0, 0])
    }

    @Test("values survive closing and reopening")
    func reopen() throws {
        let folder = TemporaryDirectory()
        do {
            let db = try Database(path: folder.child("db"))
            var batch = WriteBatch()
            batch.put("kept".bytes, forKey: "k".bytes, in: try db.defaultColumnFamily)
            try db.write(batch, sync: true)
            db.close()
            #expect(db.isClosed)
        }
        let db = try Database(path: folder.child("db"))
        #expect(try db.get("k".bytes, in: try db.defaultColumnFamily) == "kept".bytes)
    }

    @Test("column families are created, listed, dropped and reopened")
    func columnFamilies() throws {
        let folder = TemporaryDirectory()
        let path = folder.child("db")
        do {
            let db = try Database(path: path)
            #expect(db.columnFamilyNames == ["default"])
            let counters = try db.createColumnFamily(named: "counters")
            let rooms = try db.ensureColumnFamily(named: "rooms")
            #expect(try db.ensureColumnFamily(named: "rooms") === rooms)
            #expect(db.columnFamilyNames == ["counters", "default", "rooms"])

            let duplicate = #expect(throws: StorageError.self) { try db.createColumnFamily(named: "counters") }
            #expect(duplicate?.code == .columnFamilyExists)

            var batch = WriteBatch()
            batch.put("1".bytes, forKey: "x".bytes, in: counters)
            batch.put("2".bytes, forKey: "x".bytes, in: rooms)
            try db.write(batch, sync: true)
            #expect(try db.get("x".bytes, in: counters) == "1".bytes)
            #expect(try db.get("x".bytes, in: rooms) == "2".bytes)
            #expect(try db.get("x".bytes, in: try db.defaultColumnFamily) == nil)

            try db.dropColumnFamily(named: "rooms")
            #expect(db.columnFamilyNames == ["counters", "default"])
            let dropped = #expect(throws: StorageError.self) { try db.get("x".bytes, in: rooms) }
            #expect(dropped?.code == .columnFamilyUnavailable)
            let missing = #expect(throws: StorageError.self) { try db.columnFamily(named: "rooms") }
            #expect(missing?.code == .columnFamilyNotFound)
            let dropDefault = #expect(throws: StorageError.self) { try db.dropColumnFamily(named: "default") }
            #expect(dropDefault?.code == .invalidArgument)
            db.close()
        }
        #expect(try Database.columnFamilyNames(atPath: path).sorted() == ["counters", "default"])
        let db = try Database(path: path)
        #expect(db.columnFamilyNames == ["counters", "default"])
        #expect(try db.get("x".bytes, in: try db.columnFamily(named: "counters")) == "1".bytes)
        let recreated = try db.createColumnFamily(named: "rooms")
        #expect(try db.get("x".bytes, in: recreated) == nil, "a dropped family's data is gone")
    }

    @Test("a column family of another database handle is refused")
    func foreignColumnFamily() throws {
        let folder = TemporaryDirectory()
        let first = try Database(path: folder.child("one"))
        let second = try Database(path: folder.child("two"))
        var batch = WriteBatch()
        batch.put("v".bytes, forKey: "k".bytes, in: try first.defaultColumnFamily)
        let error = #expect(throws: StorageError.self) { try second.write(batch, sync: false) }
        #expect(error?.code == .columnFamilyUnavailable)
    }

    @Test("a batch is all or nothing: one unusable operation keeps every other one off the disk")
    func batchAtomicity() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let kept = try db.createColumnFamily(named: "kept")
        let doomed = try db.createColumnFamily(named: "doomed")
        var batch = WriteBatch()
        batch.put("1".bytes, forKey: "a".bytes, in: kept)
        batch.put("2".bytes, forKey: "b".bytes, in: doomed)
        batch.put("3".bytes, forKey: "c".bytes, in: kept)
        try db.dropColumnFamily(named: "doomed")
        #expect(throws: StorageError.self) { try db.write(batch, sync: true) }
        #expect(try db.scan(in: kept).isEmpty)
    }

    @Test("delete-range removes a half-open range, across column families in one batch")
    func deleteRange() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let first = try db.createColumnFamily(named: "first")
        let second = try db.createColumnFamily(named: "second")
        var fill = WriteBatch()
        for key in ["a", "b", "c", "d"] {
            fill.put(key.bytes, forKey: key.bytes, in: first)
            fill.put(key.bytes, forKey: key.bytes, in: second)
        }
        try db.write(fill, sync: false)
        var batch = WriteBatch()
        batch.deleteRange(from: "b".bytes, to: "d".bytes, in: first)
        batch.delete("a".bytes, in: second)
        try db.write(batch, sync: true)
        #expect(try db.scan(in: first).map(\.key.string) == ["a", "d"])
        #expect(try db.scan(in: second).map(\.key.string) == ["b", "c", "d"])
    }

    @Test("opening a database another handle holds gives RocksDB's lock error, not a crash")
    func lockedDatabase() throws {
        let folder = TemporaryDirectory()
        let path = folder.child("db")
        let holder = try Database(path: path)
        let error = #expect(throws: StorageError.self) { try Database(path: path) }
        #expect(error?.code == .rocksDB)
        #expect(error?.message.contains("lock") == true, "message: \(error?.message ?? "")")
        #expect(error?.message.contains(path) == true)
        holder.close()
        _ = try Database(path: path)
    }

    @Test("a missing database with createIfMissing off is an error naming the folder")
    func missingDatabase() throws {
        let folder = TemporaryDirectory()
        var options = DatabaseOptions()
        options.createIfMissing = false
        let path = folder.child("absent")
        let error = #expect(throws: StorageError.self) { try Database(path: path, options: options) }
        #expect(error?.message.contains(path) == true)
    }

    @Test("calls on a closed database throw instead of touching freed handles")
    func closedDatabase() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        _ = try db.snapshot()
        db.close()
        db.close()
        let read = #expect(throws: StorageError.self) { try db.get("k".bytes, in: family) }
        #expect(read?.code == .closed)
        var batch = WriteBatch()
        batch.put("v".bytes, forKey: "k".bytes, in: family)
        let write = #expect(throws: StorageError.self) { try db.write(batch, sync: true) }
        #expect(write?.code == .closed)
        #expect(throws: StorageError.self) { try db.scan(in: family) }
    }

    @Test("a snapshot reads the state of the moment it was taken")
    func snapshots() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        var first = WriteBatch()
        first.put("old".bytes, forKey: "k".bytes, in: family)
        try db.write(first, sync: false)
        let snapshot = try db.snapshot()
        var second = WriteBatch()
        second.put("new".bytes, forKey: "k".bytes, in: family)
        second.put("later".bytes, forKey: "l".bytes, in: family)
        try db.write(second, sync: false)

        #expect(try db.get("k".bytes, in: family, snapshot: snapshot) == "old".bytes)
        #expect(try db.multiGet(["k", "l"].map(\.bytes), in: family, snapshot: snapshot) == ["old".bytes, nil])
        #expect(try db.scan(in: family, ScanOptions(snapshot: snapshot)).map(\.key.string) == ["k"])
        #expect(try db.get("k".bytes, in: family) == "new".bytes)

        snapshot.release()
        let error = #expect(throws: StorageError.self) { try db.get("k".bytes, in: family, snapshot: snapshot) }
        #expect(error?.code == .invalidArgument)
    }

    @Test("a checkpoint is a consistent copy that opens on its own")
    func checkpoint() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.createColumnFamily(named: "objects")
        var before = WriteBatch()
        before.put("in backup".bytes, forKey: "a".bytes, in: family)
        try db.write(before, sync: true)
        try db.checkpoint(to: folder.child("backup"))
        var after = WriteBatch()
        after.put("too late".bytes, forKey: "b".bytes, in: family)
        try db.write(after, sync: true)

        let exists = #expect(throws: StorageError.self) { try db.checkpoint(to: folder.child("backup")) }
        #expect(exists?.code == .rocksDB)

        let copy = try Database(path: folder.child("backup"))
        let copied = try copy.columnFamily(named: "objects")
        #expect(try copy.scan(in: copied) == [KeyValue(key: "a".bytes, value: "in backup".bytes)])
    }
}
