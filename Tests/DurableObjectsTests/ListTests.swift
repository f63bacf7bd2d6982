import DurableObjects
import DurableObjectsTesting
import TestSupport
import Testing

@Suite("list() (SEMANTICS §3)")
struct ListTests {
    static let keys = ["a", "ab", "abc", "b", "ba", "c"]

    /// Runs `body` on an object holding `keys`, some flushed and some only in the overlay (so that listing has to
    /// merge the two), plus a flushed key deleted in the overlay.
    func withKeys(_ body: @escaping @Sendable (DurableObjectStorage) async throws -> Void) async throws {
        try await withObject { _, storage throws in
            try storage.put(Dictionary(uniqueKeysWithValues: Self.keys.prefix(3).map { ($0, $0) }))
            try storage.put("deleted-later", "x")
            try await storage.sync()
            try storage.put(Dictionary(uniqueKeysWithValues: Self.keys.dropFirst(3).map { ($0, $0) }))
            try await storage.delete("deleted-later")
            try await body(storage)
        }
    }

    @Test("every key in ascending byte order, unflushed writes and deletions merged")
    func everything() async throws {
        try await withKeys { storage throws in
            let entries = try await storage.list(as: String.self)
            #expect(entries.keys == Self.keys)
            #expect(entries.values == Self.keys)
        }
    }

    @Test("start is inclusive, startAfter exclusive, end exclusive")
    func bounds() async throws {
        try await withKeys { storage throws in
            #expect(
                try await storage.list(StorageListOptions(start: "ab"), as: String.self).keys == [
                    "ab", "abc", "b", "ba", "c",
                ])
            #expect(
                try await storage.list(StorageListOptions(startAfter: "ab"), as: String.self).keys == [
                    "abc", "b", "ba", "c",
                ])
            #expect(try await storage.list(StorageListOptions(end: "b"), as: String.self).keys == ["a", "ab", "abc"])
            #expect(
                try await storage.list(StorageListOptions(start: "ab", end: "ba"), as: String.self).keys == [
                    "ab", "abc", "b",
                ])
        }
    }

    @Test("end at or before start gives an empty result")
    func emptyRange() async throws {
        try await withKeys { storage throws in
            #expect(try await storage.list(StorageListOptions(start: "b", end: "b"), as: String.self).isEmpty)
            #expect(try await storage.list(StorageListOptions(start: "c", end: "a"), as: String.self).isEmpty)
            #expect(try await storage.list(StorageListOptions(startAfter: "b", end: "b"), as: String.self).isEmpty)
        }
    }

    @Test("prefix narrows the range and combines with start and end")
    func prefix() async throws {
        try await withKeys { storage throws in
            #expect(
                try await storage.list(StorageListOptions(prefix: "a"), as: String.self).keys == ["a", "ab", "abc"])
            #expect(try await storage.list(StorageListOptions(prefix: "b"), as: String.self).keys == ["b", "ba"])
            #expect(
                try await storage.list(StorageListOptions(start: "ab", prefix: "a"), as: String.self).keys == [
                    "ab", "abc",
                ])
            #expect(
                try await storage.list(StorageListOptions(end: "abc", prefix: "a"), as: String.self).keys == [
                    "a", "ab",
                ])
            #expect(try await storage.list(StorageListOptions(prefix: "z"), as: String.self).isEmpty)
        }
    }

    @Test("reverse walks the same range from the top and limit counts from there")
    func reverseAndLimit() async throws {
        try await withKeys { storage throws in
            #expect(
                try await storage.list(StorageListOptions(reverse: true), as: String.self).keys == Self.keys.reversed())
            #expect(try await storage.list(StorageListOptions(limit: 2), as: String.self).keys == ["a", "ab"])
            #expect(
                try await storage.list(StorageListOptions(reverse: true, limit: 2), as: String.self).keys == [
                    "c", "ba",
                ])
            #expect(
                try await storage.list(
                    StorageListOptions(start: "ab", end: "ba", reverse: true, limit: 2), as: String.self
                )
                .keys == ["b", "abc"])
            #expect(
                try await storage.list(StorageListOptions(prefix: "a", reverse: true, limit: 1), as: String.self).keys
                    == ["abc"])
        }
    }

    @Test("a list of more than 128 entries is not capped")
    func noCap() async throws {
        try await withObject { _, storage throws in
            for chunk in stride(from: 0, to: 300, by: 100) {
                try storage.put(
                    Dictionary(uniqueKeysWithValues: (chunk..<chunk + 100).map { (String(format: "k%03d", $0), $0) }))
            }
            #expect(try await storage.list(as: Int.self).count == 300)
        }
    }

    @Test("both start and startAfter, or a limit that is not positive, are errors with the platform's words")
    func optionErrors() async throws {
        try await withObject { _, storage throws in
            let both = await #expect(throws: DurableObjectError.self) {
                try await storage.list(StorageListOptions(start: "a", startAfter: "b"), as: Int.self)
            }
            #expect(both?.message == "list() cannot be called with both start and startAfter values.")
            for limit in [0, -1] {
                let error = await #expect(throws: DurableObjectError.self) {
                    try await storage.list(StorageListOptions(limit: limit), as: Int.self)
                }
                #expect(error?.message == "List limit must be positive.")
            }
        }
    }

    @Test("keys sort by raw UTF-8 bytes: Z, Ｚ (U+FF3A), 𝙕 (U+1D655), flushed or not")
    func utf8Order() async throws {
        try await withObject { _, storage throws in
            try storage.put("𝙕", 3)
            try storage.put("Z", 1)
            try await storage.sync()
            try storage.put("Ｚ", 2)
            #expect(try await storage.list(as: Int.self).keys == ["Z", "Ｚ", "𝙕"])
            #expect(try await storage.list(StorageListOptions(reverse: true), as: Int.self).keys == ["𝙕", "Ｚ", "Z"])
            #expect(try await storage.get(["𝙕", "Ｚ", "Z"], as: Int.self).keys == ["Z", "Ｚ", "𝙕"])
        }
    }

    @Test("values of different types list together as StorageValue")
    func heterogeneous() async throws {
        try await withObject { _, storage throws in
            try storage.put("a", 1)
            try storage.put("b", "two")
            try storage.put("c", Point(x: 3, y: 4))
            let values = try await storage.list(as: StorageValue.self).values
            #expect(values[0] == .integer(1))
            #expect(values[1] == .string("two"))
            #expect(try values[2].decode(as: Point.self) == Point(x: 3, y: 4))
        }
    }
}

@Suite("Transactions (SEMANTICS §3)")
struct TransactionTests {
    struct Abort: Error {}

    @Test("a transaction's writes apply when it returns, and its reads see them")
    func commit() async throws {
        try await withObject { _, storage throws in
            try storage.put("balance", 10)
            let result = try await storage.transaction { txn in
                let balance = try await txn.get("balance", as: Int.self) ?? 0
                try txn.put("balance", balance - 3)
                try txn.put("log", "withdrew 3")
                #expect(try await txn.get("balance", as: Int.self) == 7)
                #expect(try await txn.list(as: StorageValue.self).keys == ["balance", "log"])
                return balance - 3
            }
            #expect(result == 7)
            #expect(try await storage.get("balance", as: Int.self) == 7)
            #expect(try await storage.get("log", as: String.self) == "withdrew 3")
        }
    }

    @Test("a throwing transaction discards its writes, and the object is not reset")
    func rollbackOnThrow() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            _ = try await stub.text("/memory")
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try state.storage.put("balance", 10)
                await #expect(throws: Abort.self) {
                    try await state.storage.transaction { txn in
                        try txn.put("balance", 0)
                        #expect(try await txn.delete("balance") == true)
                        throw Abort()
                    }
                }
                #expect(try await state.storage.get("balance", as: Int.self) == 10)
            }
            #expect(try await stub.text("/memory") == "2", "the instance kept its memory: no reset")
        }
    }

    @Test("rollback() discards the writes; the closure's value is still returned")
    func explicitRollback() async throws {
        try await withObject { _, storage throws in
            let value = try await storage.transaction { txn in
                try txn.put("k", 1)
                txn.rollback()
                return "done"
            }
            #expect(value == "done")
            #expect(try await storage.get("k", as: Int.self) == nil)
        }
    }

    @Test("any call on a transaction after rollback() throws, naming the call, and nothing of it is kept")
    func callsAfterRollback() async throws {
        try await withObject { _, storage throws in
            try await storage.transaction { txn async throws in
                try txn.put("before", 1)
                txn.rollback()
                let put = #expect(throws: DurableObjectError.self) { try txn.put("after", 2) }
                #expect(put?.message == "Cannot put on rolled back transaction")
                let get = await #expect(throws: DurableObjectError.self) { try await txn.get("before", as: Int.self) }
                #expect(get?.message == "Cannot get on rolled back transaction")
                let delete = await #expect(throws: DurableObjectError.self) { try await txn.delete("before") }
                #expect(delete?.message == "Cannot delete on rolled back transaction")
                let list = await #expect(throws: DurableObjectError.self) { try await txn.list(as: Int.self) }
                #expect(list?.message == "Cannot list on rolled back transaction")
            }
            #expect(try await storage.list(as: Int.self).isEmpty)
        }
    }

    @Test("a transaction's writes land in one flush, with the writes of its turn")
    func atomicCommit() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            try runtime.injectWriteFailure(stub)
            await #expect(throws: DurableObjectError.self) {
                try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                    try await state.storage.transaction { txn in
                        try txn.put("a", 1)
                        try txn.put("b", 2)
                    }
                }
            }
            try await runtime.restart()
            let keys = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                try await state.storage.list(as: Int.self).keys
            }
            #expect(keys.isEmpty)
        }
    }
}
