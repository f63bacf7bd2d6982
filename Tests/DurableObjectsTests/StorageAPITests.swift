@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import Foundation
import TestSupport
import Testing

/// Runs `body` inside a fresh Probe object of a fresh runtime.
func withObject<T: Sendable>(
    _ body: @escaping @Sendable (isolated Probe, DurableObjectStorage) async throws -> T
) async throws -> T {
    try await withRuntime { runtime in
        let stub = try runtime.namespace("PROBE").getByName(uniqueName())
        return try await runtime.runInDurableObject(stub, as: Probe.self) { probe, state in
            try await body(probe, state.storage)
        }
    }
}

struct Point: Codable, Equatable, Sendable {
    var x: Int
    var y: Int
}

@Suite("Storage API (SEMANTICS §3)")
struct StorageAPITests {
    @Test("typed values round trip: integers, doubles, booleans, strings, bytes, Codable")
    func typedValues() async throws {
        try await withObject { _, storage throws in
            try storage.put("int", -42)
            try storage.put("big", Int.max)
            try storage.put("double", 3.25)
            try storage.put("bool", true)
            try storage.put("string", "héllo")
            try storage.put("bytes", [UInt8]([0, 1, 255]))
            try storage.put("point", Point(x: 1, y: 2))
            #expect(try await storage.get("int", as: Int.self) == -42)
            #expect(try await storage.get("big", as: Int.self) == Int.max)
            #expect(try await storage.get("double", as: Double.self) == 3.25)
            #expect(try await storage.get("bool", as: Bool.self) == true)
            #expect(try await storage.get("string", as: String.self) == "héllo")
            #expect(try await storage.get("bytes", as: [UInt8].self) == [0, 1, 255])
            #expect(try await storage.get("point", as: Point.self) == Point(x: 1, y: 2))
            #expect(try await storage.get("missing", as: Int.self) == nil)
            #expect(try await storage.get("int", as: StorageValue.self) == .integer(-42))
            let error = await #expect(throws: DurableObjectError.self) { try await storage.get("string", as: Int.self) }
            #expect(error?.message.contains("'string'") == true)
        }
    }

    @Test("values survive a restart of the runtime")
    func durability() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName("durable")
            #expect(try await stub.text("/increment") == "1")
            #expect(try await stub.text("/increment") == "2")
            try await runtime.restart()
            #expect(try await stub.text("/count") == "2")
        }
    }

    @Test("get(keys) returns ascending key order and omits missing keys; more than 128 keys is an error")
    func multiGet() async throws {
        try await withObject { _, storage throws in
            try storage.put(["b": 2, "a": 1, "c": 3])
            let entries = try await storage.get(["c", "missing", "a"], as: Int.self)
            #expect(entries.keys == ["a", "c"])
            #expect(entries.values == [1, 3])
            #expect(entries["c"] == 3)
            #expect(entries["missing"] == nil)
            let keys = (0..<129).map { "k\($0)" }
            let error = await #expect(throws: DurableObjectError.self) { try await storage.get(keys, as: Int.self) }
            #expect(error?.message == "Maximum number of key value pairs is 128. 129 pairs were provided.")
            _ = try await storage.get(Array(keys.prefix(128)), as: Int.self)
        }
    }

    @Test("put(entries) validates all entries before applying any; more than 128 is an error")
    func multiPut() async throws {
        try await withObject { _, storage throws in
            try await storage.sync()
            let tooMany = Dictionary(uniqueKeysWithValues: (0..<129).map { ("k\($0)", $0) })
            let error = #expect(throws: DurableObjectError.self) { try storage.put(tooMany) }
            #expect(error?.message == "Maximum number of pairs is 128.")
            #expect(try await storage.list(as: Int.self).isEmpty)

            let oversized = [UInt8](repeating: 1, count: 200_000)
            #expect(throws: DurableObjectError.self) {
                try storage.put(["good": [UInt8]([1]), "bad": oversized])
            }
            #expect(try await storage.get("good", as: [UInt8].self) == nil, "nothing applied when one entry is bad")
        }
    }

    @Test("keys up to 2048 bytes are accepted; a longer one gets the platform's error")
    func keyLimit() async throws {
        try await withObject { _, storage throws in
            try storage.put(String(repeating: "k", count: 2048), 1)
            #expect(try await storage.get(String(repeating: "k", count: 2048), as: Int.self) == 1)
            let long = String(repeating: "é", count: 1025)  // 2050 bytes of UTF-8
            let put = #expect(throws: DurableObjectError.self) { try storage.put(long, 1) }
            #expect(put?.message == "Keys cannot be larger than 2048 bytes. A key of size 2050 was provided.")
            let get = await #expect(throws: DurableObjectError.self) { try await storage.get(long, as: Int.self) }
            #expect(get?.message == put?.message)
            await #expect(throws: DurableObjectError.self) { try await storage.delete(long) }
        }
    }

    @Test("values of up to 131072 bytes of data are accepted; a larger one gets the platform's error")
    func valueLimit() async throws {
        try await withObject { _, storage throws in
            // The limit counts the user's data, not the type tag stored before it.
            try storage.put("fits", [UInt8](repeating: 7, count: 131_072))
            #expect(try await storage.get("fits", as: [UInt8].self)?.count == 131_072)
            try storage.put("fits-text", String(repeating: "t", count: 131_072))
            let error = #expect(throws: DurableObjectError.self) {
                try storage.put("too-big", [UInt8](repeating: 7, count: 131_073))
            }
            #expect(error?.message == "Values cannot be larger than 131072 bytes. A value of size 131073 was provided.")
            #expect(try await storage.get("too-big", as: [UInt8].self) == nil)
        }
    }

    @Test("delete tells whether the key existed, exactly, before any flush")
    func deleteResults() async throws {
        try await withObject { _, storage throws in
            try storage.put("a", 1)
            #expect(try await storage.delete("a") == true)
            #expect(try await storage.delete("a") == false)
            #expect(try await storage.delete("never") == false)
            try storage.put(["x": 1, "y": 2, "z": 3])
            #expect(try await storage.delete(["x", "y", "nope"]) == 2)
            #expect(try await storage.get("z", as: Int.self) == 3)
            let error = await #expect(throws: DurableObjectError.self) {
                try await storage.delete((0..<129).map { "k\($0)" })
            }
            #expect(error?.message == "Maximum number of keys is 128.")
        }
    }

    @Test("delete is exact for flushed keys too")
    func deleteAfterFlush() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            _ = try await stub.text("/increment")
            try runtime.evict(stub)
            let results = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                [try await state.storage.delete("count"), try await state.storage.delete("count")]
            }
            #expect(results == [true, false])
        }
    }

    @Test("deleteAll removes every key and cannot run inside a transaction")
    func deleteAll() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try state.storage.put(["a": 1, "b": 2])
                try await state.storage.sync()
                try state.storage.put("c", 3)
                try await state.storage.deleteAll()
                #expect(try await state.storage.list(as: Int.self).isEmpty)
                #expect(try await state.storage.get("a", as: Int.self) == nil)
                try state.storage.put("after", 4)
                let error = await #expect(throws: DurableObjectError.self) {
                    try await state.storage.transaction { txn in try txn.deleteAll() }
                }
                #expect(error?.message == "Cannot call deleteAll() within a transaction")
                let direct = await #expect(throws: DurableObjectError.self) {
                    try await state.storage.transaction { _ in try await state.storage.deleteAll() }
                }
                #expect(direct?.message == "Cannot call deleteAll() within a transaction")
            }
            try await runtime.restart()
            let stored = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try await state.storage.list(as: Int.self).keys
            }
            #expect(stored == ["after"])
        }
    }

    @Test("sync returns once earlier writes are durable")
    func sync() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let gate = try runtime.holdStorageWrites()
            let order = Recorder<String>()
            let syncing = Task {
                try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                    try state.storage.put("k", 1, options: StorageWriteOptions(allowUnconfirmed: true))
                    try await state.storage.sync()
                    order.append("synced")
                }
            }
            #expect(await eventually { gate.heldCount == 1 })
            order.append("write released")
            gate.open()
            try await syncing.value
            #expect(order.values == ["write released", "synced"], "sync returned before the write was durable")
        }
    }

    @Test("an object that never stored anything leaves nothing behind; listDurableObjectIds shows the others")
    func listObjectIDs() async throws {
        try await withRuntime { runtime in
            let namespace = try runtime.namespace("PROBE")
            _ = try await namespace.getByName("reader").text("/count")
            _ = try await namespace.getByName("writer").text("/increment")
            #expect(try runtime.listDurableObjectIds(namespace) == [namespace.idFromName("writer")])
        }
    }

    @Test("an object never sees another object's keys: get, list in both directions, deleteAll")
    func objectsAreIsolated() async throws {
        try await withRuntime { runtime in
            let namespace = try runtime.namespace("PROBE")
            let first = namespace.getByName(uniqueName())
            let second = namespace.getByName(uniqueName())
            // Keys at both ends of the key space, and one both objects use.
            try await runtime.runInDurableObject(first, as: Probe.self) { _, state throws in
                try state.storage.put("shared", "first")
                try state.storage.put("\u{01}", "lowest")
                try state.storage.put("\u{10FFFF}\u{10FFFF}", "highest")
                try state.storage.put("a", "1")
            }
            try await runtime.runInDurableObject(second, as: Probe.self) { _, state throws in
                #expect(try await state.storage.get("a", as: String.self) == nil)
                #expect(try await state.storage.get("\u{01}", as: String.self) == nil)
                try state.storage.put("shared", "second")
                let all = try await state.storage.list(as: String.self)
                #expect(all.map(\.key) == ["shared"])
                #expect(all.map(\.value) == ["second"])
                let reversed = try await state.storage.list(StorageListOptions(reverse: true), as: String.self)
                #expect(reversed.map(\.key) == ["shared"])
                let wide = try await state.storage.list(
                    StorageListOptions(start: "\u{01}", end: "\u{10FFFF}\u{10FFFF}\u{10FFFF}"), as: String.self)
                #expect(wide.map(\.key) == ["shared"])
                try await state.storage.deleteAll()
            }
            try await runtime.runInDurableObject(first, as: Probe.self) { _, state throws in
                #expect(try await state.storage.get("shared", as: String.self) == "first")
                #expect(try await state.storage.get("a", as: String.self) == "1")
                #expect(
                    try await state.storage.list(as: String.self).map(\.key).sorted()
                        == ["\u{01}", "\u{10FFFF}\u{10FFFF}", "a", "shared"].sorted())
            }
        }
    }

    @Test("noCache changes no result")
    func noCache() async throws {
        try await withObject { _, storage throws in
            try storage.put("k", 1, options: StorageWriteOptions(noCache: true))
            #expect(try await storage.get("k", as: Int.self, options: StorageReadOptions(noCache: true)) == 1)
            try await storage.sync()
            #expect(try await storage.get("k", as: Int.self, options: StorageReadOptions(noCache: true)) == 1)
            #expect(try await storage.get("k", as: Int.self) == 1)
        }
    }
}
