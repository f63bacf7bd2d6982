import DurableStorage
import TestSupport
import Testing

@Suite("Object key space")
struct ObjectKeySpaceTests {
    static func id(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: 32) }

    @Test("a stored key is the 32-byte id followed by the UTF-8 user key")
    func layout() {
        let key = ObjectKeySpace.storageKey(objectID: Self.id(7), userKey: "é")
        #expect(key.count == 34)
        #expect(Array(key.prefix(32)) == Self.id(7))
        #expect(Array(key.suffix(2)) == [0xC3, 0xA9])
        #expect(ObjectKeySpace.userKey(ofStorageKey: key) == "é")
        #expect(ObjectKeySpace.objectID(ofStorageKey: key) == Self.id(7))
    }

    @Test("one object's keys form one contiguous range, apart from its neighbours'")
    func contiguousRanges() throws {
        let folder = TemporaryDirectory()
        let db = try Database(path: folder.child("db"))
        let family = try db.defaultColumnFamily
        var batch = WriteBatch()
        for object in [Self.id(1), Self.id(2), Self.id(0xFF)] {
            for key in ["𝙕", "a", "Z", "Ｚ", "ab"] {
                batch.put(
                    object + key.bytes, forKey: ObjectKeySpace.storageKey(objectID: object, userKey: key), in: family)
            }
        }
        try db.write(batch, sync: false)

        for object in [Self.id(1), Self.id(2), Self.id(0xFF)] {
            let all = try db.scan(in: family, ObjectKeySpace.scanOptions(objectID: object))
            #expect(all.map { ObjectKeySpace.userKey(ofStorageKey: $0.key) } == ["Z", "a", "ab", "Ｚ", "𝙕"])
            #expect(all.allSatisfy { ObjectKeySpace.objectID(ofStorageKey: $0.key) == object })
        }
        let prefixed = try db.scan(in: family, ObjectKeySpace.scanOptions(objectID: Self.id(2), prefix: "a".bytes))
        #expect(prefixed.map { ObjectKeySpace.userKey(ofStorageKey: $0.key) } == ["a", "ab"])
        let window = try db.scan(
            in: family,
            ObjectKeySpace.scanOptions(objectID: Self.id(2), start: "a".bytes, end: "Ｚ".bytes, reverse: true))
        #expect(window.map { ObjectKeySpace.userKey(ofStorageKey: $0.key) } == ["ab", "a"])
        #expect(ObjectKeySpace.range(ofObject: Self.id(0xFF)).upper == nil)
        #expect(ObjectKeySpace.range(ofObject: Self.id(1)).upper == Self.id(1).dropLast() + [2])
    }
}
