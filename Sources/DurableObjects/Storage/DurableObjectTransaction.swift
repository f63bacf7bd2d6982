import Synchronization

/// The storage view inside ``DurableObjectStorage/transaction(isolation:_:)``: reads see the transaction's own
/// writes; the writes apply together when the closure returns, or not at all.
public final class DurableObjectTransaction: Sendable {
    private let engine: StorageEngine
    private let state = Mutex<(rolledBack: Bool, finished: Bool)>((false, false))

    init(engine: StorageEngine) { self.engine = engine }

    private var operations: StorageOperations {
        get throws {
            if state.withLock({ $0.finished }) {
                throw DurableObjectError(.failedPrecondition, "This transaction has already finished.")
            }
            return StorageOperations(engine: engine, inTransaction: true)
        }
    }

    var isRolledBack: Bool { state.withLock { $0.rolledBack } }
    func finish() { state.withLock { $0.finished = true } }

    /// Discards every write of the transaction when it ends.
    public func rollback() { state.withLock { $0.rolledBack = true } }

    /// The value stored under `key`, seeing the transaction's writes.
    public func get<V: Decodable & Sendable>(
        _ key: String, as type: V.Type = V.self, options: StorageReadOptions = StorageReadOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> V? {
        try await operations.get(key, as: V.self, options: options)
    }

    /// The values stored under `keys` (at most 128), in key order.
    public func get<V: Decodable & Sendable>(
        _ keys: [String], as type: V.Type = V.self, options: StorageReadOptions = StorageReadOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        try await operations.get(keys, as: V.self, options: options)
    }

    /// Stores `value` under `key` in the transaction.
    public func put<V: Encodable>(_ key: String, _ value: V, options: StorageWriteOptions = StorageWriteOptions())
        throws
    {
        try operations.put([(key, value)], options: options)
    }

    /// Stores every entry (at most 128) in the transaction.
    public func put<V: Encodable>(_ entries: [String: V], options: StorageWriteOptions = StorageWriteOptions()) throws {
        try operations.put(entries.map { ($0.key, $0.value) }, options: options)
    }

    /// Deletes `key` in the transaction; returns whether it existed.
    @discardableResult
    public func delete(
        _ key: String, options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> Bool {
        try operations.delete([key], options: options) == 1
    }

    /// Deletes `keys` (at most 128) in the transaction; returns how many existed.
    @discardableResult
    public func delete(
        _ keys: [String], options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> Int {
        try operations.delete(keys, options: options)
    }

    /// The entries selected by `options`, seeing the transaction's writes.
    public func list<V: Decodable & Sendable>(
        _ options: StorageListOptions = StorageListOptions(), as type: V.Type = V.self,
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        try await operations.list(options, as: V.self)
    }

    /// Always throws: `Cannot call deleteAll() within a transaction`.
    public func deleteAll() throws {
        throw StorageLimits.deleteAllInTransaction
    }
}
