import Dispatch
import DurableStorage

/// The storage calls shared by ``DurableObjectStorage`` and ``DurableObjectTransaction``: validation, encoding
/// and the choice between reading in the turn (input gate held) and reading off the object's executor
/// (`allowConcurrency`).
struct StorageOperations: Sendable {
    let engine: StorageEngine
    let inTransaction: Bool

    func get<V: Decodable & Sendable>(
        _ key: String, as type: V.Type, options: StorageReadOptions, isolation: isolated (any Actor)? = #isolation
    ) async throws -> V? {
        let keyBytes = Array(key.utf8)
        try StorageLimits.checkKey(keyBytes)
        let found = try engine.lookup(keyBytes, inTransaction: inTransaction)
        engine.hooks.metrics.recordReads(1)
        let bytes: [UInt8]?
        if let slot = found.slot {
            bytes = slot.value
        } else {
            bytes = try await finishRead(options.allowConcurrency) { [engine] snapshot in
                try engine.databaseGet(
                    keyBytes, snapshot: snapshot, generation: found.generation, noCache: options.noCache)
            }
        }
        return try bytes.map { try StorageValueCoding.decode($0, as: V.self, key: key) }
    }

    func get<V: Decodable & Sendable>(
        _ keys: [String], as type: V.Type, options: StorageReadOptions, isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        try StorageLimits.checkGetCount(keys.count)
        let keyBytes = keys.map { Array($0.utf8) }
        for key in keyBytes { try StorageLimits.checkKey(key) }
        let sortedKeys = Array(Set(keyBytes)).sorted { $0.lexicographicallyPrecedes($1) }
        let lookups = try sortedKeys.map { try engine.lookup($0, inTransaction: inTransaction) }
        engine.hooks.metrics.recordReads(sortedKeys.count)
        let found = try await finishRead(options.allowConcurrency) { [engine] snapshot in
            try zip(sortedKeys, lookups).compactMap { key, lookup -> ([UInt8], [UInt8])? in
                if let slot = lookup.slot { return slot.value.map { (key, $0) } }
                return try engine.databaseGet(
                    key, snapshot: snapshot, generation: lookup.generation, noCache: options.noCache
                ).map { (key, $0) }
            }
        }
        return StorageEntries(
            try found.map { key, bytes in
                let name = String(decoding: key, as: UTF8.self)
                return (name, try StorageValueCoding.decode(bytes, as: V.self, key: name))
            })
    }

    func put<V: Encodable>(_ entries: [(String, V)], options: StorageWriteOptions) throws {
        try StorageLimits.checkPutCount(entries.count)
        let writes = try entries.map { key, value -> ([UInt8], OverlaySlot) in
            let keyBytes = Array(key.utf8)
            try StorageLimits.checkKey(keyBytes)
            let encoded = try StorageValueCoding.encode(value)
            try StorageLimits.checkValue(encoded)
            return (keyBytes, .value(encoded))
        }
        try engine.write(writes, unconfirmed: options.allowUnconfirmed, inTransaction: inTransaction)
        engine.hooks.metrics.recordWrites(
            writes.count, bytes: writes.reduce(0) { $0 + $1.0.count + ($1.1.value?.count ?? 0) })
    }

    func delete(_ keys: [String], options: StorageWriteOptions) throws -> Int {
        try StorageLimits.checkDeleteCount(keys.count)
        let keyBytes = Array(Set(keys.map { Array($0.utf8) }))
        for key in keyBytes { try StorageLimits.checkKey(key) }
        // Existence is read through the overlay, so the count is exact even before earlier writes are flushed.
        let existing = try keyBytes.filter { try engine.read($0, inTransaction: inTransaction, noCache: true) != nil }
        try engine.write(
            keyBytes.map { ($0, .deleted) }, unconfirmed: options.allowUnconfirmed, inTransaction: inTransaction)
        engine.hooks.metrics.recordWrites(keyBytes.count, bytes: keyBytes.reduce(0) { $0 + $1.count })
        return existing.count
    }

    func list<V: Decodable & Sendable>(
        _ options: StorageListOptions, as type: V.Type, isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        if options.start != nil && options.startAfter != nil {
            throw DurableObjectError.invalid("list() cannot be called with both start and startAfter values.")
        }
        if let limit = options.limit, limit <= 0 { throw DurableObjectError.invalid("List limit must be positive.") }
        let lower = options.startAfter.map { Array($0.utf8) + [0] } ?? options.start.map { Array($0.utf8) }
        let upper = options.end.map { Array($0.utf8) }
        if let lower, let upper, !lower.lexicographicallyPrecedes(upper) { return StorageEntries([]) }
        let prefix = options.prefix.flatMap { $0.isEmpty ? nil : Array($0.utf8) }
        let (overlay, skipDatabase) = try engine.overlayForList(inTransaction: inTransaction)
        let entries = try await finishRead(options.allowConcurrency) { [engine] snapshot in
            try engine.list(
                overlay: overlay, skipDatabase: skipDatabase, snapshot: snapshot, lower: lower, upper: upper,
                prefix: prefix, reverse: options.reverse, limit: options.limit)
        }
        engine.hooks.metrics.recordReads(entries.count)
        return StorageEntries(
            try entries.map { key, bytes in
                let name = String(decoding: key, as: UTF8.self)
                return (name, try StorageValueCoding.decode(bytes, as: V.self, key: name))
            })
    }

    /// Finishes a read whose overlay part was done when it was issued. Without `allowConcurrency` it runs in the
    /// current turn (no suspension: the input gate holds). With it, the rest runs on a pool thread against a
    /// snapshot taken now, so the object can take other events meanwhile and the read still returns what was
    /// stored when it was issued.
    private func finishRead<R: Sendable>(
        _ allowConcurrency: Bool, isolation: isolated (any Actor)? = #isolation,
        _ work: @escaping @Sendable (Snapshot?) throws -> R
    ) async throws -> R {
        guard allowConcurrency else { return try work(nil) }
        let snapshot = try engine.snapshot()
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try work(snapshot) })
                snapshot.release()
            }
        }
    }
}
