/// What copies a database's writes elsewhere (a primary node's standby): every write of the database is handed to
/// it, in the order the writes are applied, before it reaches the local disk.
///
/// Install one with ``Database/replicate(through:)``. ``GroupCommitter`` and ``Database/writeSynced(_:)`` then
/// report a write as durable only once ``whenReplicated(_:_:)`` says the copy has it too; a plain
/// ``Database/write(_:sync:)`` is copied but does not wait.
public protocol WriteReplication: AnyObject, Sendable {
    /// Called under the database's write order, before the local write: gives the write its sequence number, queues
    /// it for the copy and returns what to write locally with it (the sequence, so that it survives a restart).
    ///
    /// - Throws: to refuse the write (a fenced primary): nothing of it is written then.
    func prepare(_ batches: [WriteBatch]) throws -> ReplicationTicket

    /// The local write of a prepared write failed: the copy may hold a write the database does not.
    func localWriteFailed(sequence: UInt64, error: any Error)

    /// Calls `completion` once the write of `sequence` may be acknowledged: the copy has it, or the policy says the
    /// primary acknowledges alone. A failure means the write must not be acknowledged (the primary was fenced).
    /// `completion` must be quick; it may run on any thread, or at once.
    func whenReplicated(_ sequence: UInt64, _ completion: @escaping @Sendable (Result<Void, any Error>) -> Void)
}

/// A write's place in the replication: its sequence and what goes to the local disk with it.
public struct ReplicationTicket: Sendable {
    /// The sequence number given to the write.
    public var sequence: UInt64
    /// Written locally in the same atomic write.
    public var localWrites: WriteBatch

    /// A ticket.
    public init(sequence: UInt64, localWrites: WriteBatch) {
        self.sequence = sequence
        self.localWrites = localWrites
    }
}
