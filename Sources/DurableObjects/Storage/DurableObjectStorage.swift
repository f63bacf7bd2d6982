/// The private, transactional storage of one durable object (SEMANTICS.md §3 and §4).
///
/// Keys are strings compared as raw UTF-8 bytes; values are any `Codable` type, with compact encodings for
/// integers, doubles, booleans, strings and byte arrays.
///
/// - Writes (`put`, `delete`) update an in-memory overlay at once, so later reads see them, and are flushed
///   together when the object next yields: all writes of a turn land in one atomic batch.
/// - Reads called from the object do not suspend the object: no other event is delivered while a read is in
///   progress (the input gate), unless the read passes `allowConcurrency`.
/// - The object's responses, and its calls to other objects, wait until its writes are durable (the output
///   gate), unless the writes pass `allowUnconfirmed`.
///
/// Call it from the object's own isolation; the `isolation` parameters make that the default.
public final class DurableObjectStorage: Sendable {
    let engine: StorageEngine
    let control: any ActivationControl

    init(engine: StorageEngine, control: any ActivationControl) {
        self.engine = engine
        self.control = control
    }

    private var operations: StorageOperations { StorageOperations(engine: engine, inTransaction: false) }

    /// The value stored under `key`, or `nil`.
    ///
    /// - Throws: `Keys cannot be larger than 2048 bytes. …` for a longer key; an error naming the key when the
    ///   stored value is not a `V`.
    public func get<V: Decodable & Sendable>(
        _ key: String, as type: V.Type = V.self, options: StorageReadOptions = StorageReadOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> V? {
        try await operations.get(key, as: V.self, options: options)
    }

    /// The values stored under `keys` (at most 128), in ascending key order, missing keys omitted.
    public func get<V: Decodable & Sendable>(
        _ keys: [String], as type: V.Type = V.self, options: StorageReadOptions = StorageReadOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        try await operations.get(keys, as: V.self, options: options)
    }

    /// Stores `value` under `key`. Returns at once; the write is flushed after the current turn.
    ///
    /// - Throws: the key and value size errors of SEMANTICS.md §3.
    public func put<V: Encodable>(_ key: String, _ value: V, options: StorageWriteOptions = StorageWriteOptions())
        throws
    {
        try operations.put([(key, value)], options: options)
    }

    /// Stores every entry (at most 128); all are validated before any is applied.
    public func put<V: Encodable>(_ entries: [String: V], options: StorageWriteOptions = StorageWriteOptions()) throws {
        try operations.put(entries.map { ($0.key, $0.value) }, options: options)
    }

    /// Deletes `key`; returns whether it existed (exact even before earlier writes are flushed).
    @discardableResult
    public func delete(
        _ key: String, options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> Bool {
        try operations.delete([key], options: options) == 1
    }

    /// Deletes `keys` (at most 128); returns how many existed.
    @discardableResult
    public func delete(
        _ keys: [String], options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> Int {
        try operations.delete(keys, options: options)
    }

    /// The entries selected by `options`, in key order (no 128 cap).
    ///
    /// - Throws: `list() cannot be called with both start and startAfter values.`; `List limit must be positive.`
    public func list<V: Decodable & Sendable>(
        _ options: StorageListOptions = StorageListOptions(), as type: V.Type = V.self,
        isolation: isolated (any Actor)? = #isolation
    ) async throws -> StorageEntries<V> {
        try await operations.list(options, as: V.self)
    }

    /// Deletes every key of the object.
    ///
    /// - Throws: `Cannot call deleteAll() within a transaction` inside a transaction.
    public func deleteAll(
        options: StorageWriteOptions = StorageWriteOptions(), isolation: isolated (any Actor)? = #isolation
    ) async throws {
        if engine.inTransaction { throw StorageLimits.deleteAllInTransaction }
        try engine.deleteAll(unconfirmed: options.allowUnconfirmed)
    }

    /// Runs `body` exclusively (no other event is delivered meanwhile) against a transaction, and applies its
    /// writes as one group when it returns. If `body` throws or calls ``DurableObjectTransaction/rollback()``,
    /// its writes are discarded; the object is not reset.
    public func transaction<T>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (DurableObjectTransaction) async throws -> T
    ) async throws -> T {
        if engine.inTransaction {
            throw DurableObjectError(.failedPrecondition, "A transaction is already running in this Durable Object.")
        }
        control.closeInputGate()
        defer { control.openInputGate() }
        try engine.beginTransaction()
        let transaction = DurableObjectTransaction(engine: engine)
        do {
            let value = try await body(transaction)
            transaction.finish()
            try engine.endTransaction(commit: !transaction.isRolledBack)
            return value
        } catch {
            transaction.finish()
            try? engine.endTransaction(commit: false)
            throw error
        }
    }

    /// Returns once every write made before the call is durable.
    public func sync() async throws {
        try await engine.waitUntilDurable(engine.writeSequence)
    }
}
