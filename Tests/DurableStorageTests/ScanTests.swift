import DurableStorage
import TestSupport
import Testing

@Suite("Scans")
struct ScanTests {
    /// A database holding `keys` (each key's value is the key) in its default column family.
    static func database(_ folder: TemporaryDirectory, keys: [String]) throws -> (Database, ColumnFamily) {
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        var batch = WriteBatch()
        for key in keys { batch.put(key.bytes, forKey: key.bytes, in: family) }
        try db.write(batch, sync: false)
        return (db, family)
    }

    static let keys = ["a", "ab", "abc", "abd", "b", "ba", "c"]

    @Test("keys come back in raw UTF-8 byte order: Z, Ｚ (U+FF3A), 𝙕 (U+1D655)")
    func utf8Order() throws {
        let folder = TemporaryDirectory()
        let (db, family) = try Self.database(folder, keys: ["𝙕", "Z", "Ｚ"])
        #expect(try db.scan(in: family).map(\.key.string) == ["Z", "Ｚ", "𝙕"])
        #expect(try db.scan(in: family, ScanOptions(reverse: true)).map(\.key.string) == ["𝙕", "Ｚ", "Z"])
    }

    @Test("lower bound is inclusive, upper bound exclusive, in both directions")
    func bounds() throws {
        let folder = TemporaryDirectory()
        let (db, family) = try Self.database(folder, keys: Self.keys)
        let forward = ScanOptions(lowerBound: "ab".bytes, upperBound: "b".bytes)
        #expect(try db.scan(in: family, forward).map(\.key.string) == ["ab", "abc", "abd"])
        var backward = forward
        backward.reverse = true
        #expect(try db.scan(in: family, backward).map(\.key.string) == ["abd", "abc", "ab"])
        #expect(try db.scan(in: family, ScanOptions(lowerBound: "b".bytes)).map(\.key.string) == ["b", "ba", "c"])
        #expect(try db.scan(in: family, ScanOptions(upperBound: "ab".bytes)).map(\.key.string) == ["a"])
        #expect(try db.scan(in: family, ScanOptions(lowerBound: "c".bytes, upperBound: "a".bytes)).isEmpty)
        #expect(try db.scan(in: family, ScanOptions(lowerBound: "b".bytes, upperBound: "b".bytes)).isEmpty)
    }

    @Test("prefix narrows the range and combines with the bounds")
    func prefix() throws {
        let folder = TemporaryDirectory()
        let (db, family) = try Self.database(folder, keys: Self.keys)
        #expect(try db.scan(in: family, ScanOptions(prefix: "ab".bytes)).map(\.key.string) == ["ab", "abc", "abd"])
        #expect(
            try db.scan(in: family, ScanOptions(prefix: "ab".bytes, reverse: true)).map(\.key.string) == [
                "abd", "abc", "ab",
            ])
        #expect(
            try db.scan(in: family, ScanOptions(lowerBound: "abc".bytes, prefix: "ab".bytes)).map(\.key.string) == [
                "abc", "abd",
            ])
        #expect(
            try db.scan(in: family, ScanOptions(upperBound: "abd".bytes, prefix: "ab".bytes)).map(\.key.string) == [
                "ab", "abc",
            ])
        #expect(try db.scan(in: family, ScanOptions(prefix: "z".bytes)).isEmpty)
    }

    @Test("a prefix ending in 0xFF bytes still finds its keys")
    func prefixWithHighBytes() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        var batch = WriteBatch()
        for key: [UInt8] in [[1, 0xFF], [1, 0xFF, 0], [1, 0xFF, 0xFF], [2]] { batch.put(key, forKey: key, in: family) }
        try db.write(batch, sync: false)
        #expect(
            try db.scan(in: family, ScanOptions(prefix: [1, 0xFF])).map(\.key) == [
                [1, 0xFF], [1, 0xFF, 0], [1, 0xFF, 0xFF],
            ])
        #expect(try db.scan(in: family, ScanOptions(prefix: [0xFF])).isEmpty)
        #expect(KeyBytes.successor(ofPrefix: [1, 0xFF]) == [2])
        #expect(KeyBytes.successor(ofPrefix: [0xFF, 0xFF]) == nil)
    }

    @Test("limit counts from where the walk starts, and forEach stops when asked")
    func limit() throws {
        let folder = TemporaryDirectory()
        let (db, family) = try Self.database(folder, keys: Self.keys)
        #expect(try db.scan(in: family, ScanOptions(limit: 2)).map(\.key.string) == ["a", "ab"])
        #expect(try db.scan(in: family, ScanOptions(reverse: true, limit: 2)).map(\.key.string) == ["c", "ba"])
        #expect(try db.scan(in: family, ScanOptions(limit: 0)).isEmpty)
        var seen: [String] = []
        try db.forEach(in: family) { key, _ in
            seen.append(key.string)
            return seen.count < 3
        }
        #expect(seen == ["a", "ab", "abc"])
    }
}
