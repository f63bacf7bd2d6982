/// The private, transactional storage of one durable object (<doc:Semantics> gives its rules and limits).
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
public final class DurableObjectStorage: DurableObjectStorageView, @unchecked Sendable {
    let control: any ActivationControl

    init(engine: StorageEngine, control: any ActivationControl) {
        self.control = control
        super.init(engine: engine, inTransaction: false)
    }

    /// Deletes every key of the object.
    ///
    /// - Throws: `Cannot call deleteAll() within a transaction` inside a transaction.
    public func deleteAll(
        options: StorageWriteOptions = StorageWriteOptions(), isolation: isolated (any Actor)? = #isolation
    ) async throws {
        if engine.inTransaction { throw StorageLimits.deleteAllInTransaction }
        try engine.deleteAll(unconfirmed: options.allowUnconfirmed)
        engine.hooks.metrics.recordWrites(1, bytes: 0)
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
