/// The calls shared by an object's storage and a transaction on it: `get`, `put`, `delete` and `list`.
///
/// Use it through ``DurableObjectStorage`` (`state.storage`) or ``DurableObjectTransaction``.
public class DurableObjectStorageView: @unchecked Sendable {
    // Immutable after init; the engine does its own locking.
    let engine: StorageEngine
    private let inTransaction: Bool

    init(engine: StorageEngine, inTransaction: Bool) {
        self.engine = engine
        self.inTransaction = inTransaction
    }

    /// The operations of this view for the call `operation` (`get`, `put`, …); a finished or rolled-back
    /// transaction refuses them, naming the call.
    func operations(_ operation: String) throws -> StorageOperations {
        StorageOperations(engine: engine, inTransaction: inTransaction)
    }

    /// The value stored under `key`, or `nil`.
    ///
    /// - Throws: `Keys cannot be larger than 2048 bytes. …` for a longer key; an error naming the key when the
    ///   stored value is not a `V`.
    public func get<V: Decodable & Sendable>(
        _ key: String, as type: V.Type = V.self, options: StorageReadOptions = StorageReadOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> V? {
        try await operations("get").get(key, as: V.self, options: options)
    }

    /// The values stored under `keys` (at most 128), in ascending key order, missing keys omitted.
    public func get<V: Decodable & Sendable>(
        _ keys: [String], as type: V.Type = V.self, options: StorageReadOptions = StorageReadOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        try await operations("get").get(keys, as: V.self, options: options)
    }

    /// Stores `value` under `key`. Returns at once; the write is flushed after the current turn.
    ///
    /// - Throws: the key and value size errors of <doc:Semantics#Storage>.
    public func put<V: Encodable>(_ key: String, _ value: V, options: StorageWriteOptions = StorageWriteOptions())
        throws
    {
        try operations("put").put([(key, value)], options: options)
    }

    /// Stores every entry (at most 128); all are validated before any is applied.
    public func put<V: Encodable>(_ entries: [String: V], options: StorageWriteOptions = StorageWriteOptions()) throws {
        try operations("put").put(entries.map { ($0.key, $0.value) }, options: options)
    }

    /// Deletes `key`; returns whether it existed (exact even before earlier writes are flushed).
    @discardableResult
    public func delete(
        _ key: String, options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> Bool {
        try operations("delete").delete([key], options: options) == 1
    }

    /// Deletes `keys` (at most 128); returns how many existed.
    @discardableResult
    public func delete(
        _ keys: [String], options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> Int {
        try operations("delete").delete(keys, options: options)
    }

    /// The entries selected by `options`, in key order (no 128 cap).
    ///
    /// - Throws: `list() cannot be called with both start and startAfter values.`; `List limit must be positive.`
    public func list<V: Decodable & Sendable>(
        _ options: StorageListOptions = StorageListOptions(), as type: V.Type = V.self,
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        try await operations("list").list(options, as: V.self)
    }
}
