import Synchronization

/// The storage view inside ``DurableObjectStorage/transaction(isolation:_:)``: reads see the transaction's own
/// writes; the writes apply together when the closure returns, or not at all. `get`, `put`, `delete` and `list`
/// work as on ``DurableObjectStorage``.
public final class DurableObjectTransaction: DurableObjectStorageView, @unchecked Sendable {
    private let state = Mutex<(rolledBack: Bool, finished: Bool)>((false, false))

    init(engine: StorageEngine) { super.init(engine: engine, inTransaction: true) }

    override func operations(_ operation: String) throws -> StorageOperations {
        let (rolledBack, finished) = state.withLock { ($0.rolledBack, $0.finished) }
        if rolledBack {
            throw DurableObjectError(.failedPrecondition, "Cannot \(operation) on rolled back transaction")
        }
        if finished {
            throw DurableObjectError(.failedPrecondition, "This transaction has already finished.")
        }
        return try super.operations(operation)
    }

    var isRolledBack: Bool { state.withLock { $0.rolledBack } }
    func finish() { state.withLock { $0.finished = true } }

    /// Discards every write of the transaction when it ends; any call on the transaction afterwards throws
    /// `Cannot <call> on rolled back transaction`.
    public func rollback() { state.withLock { $0.rolledBack = true } }

    /// Always throws: `Cannot call deleteAll() within a transaction`.
    public func deleteAll() throws {
        throw StorageLimits.deleteAllInTransaction
    }
}
