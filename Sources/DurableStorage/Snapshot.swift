import Synchronization

/// A consistent, read-only view of a ``Database`` as of the moment it was taken.
///
/// Pass it to ``Database/get(_:in:snapshot:)``, ``Database/multiGet(_:in:snapshot:)`` or ``ScanOptions/snapshot``.
/// It is released by ``release()``, when the last reference goes away, or when the database closes; reads through
/// a released snapshot throw ``StorageError/Code-swift.struct/invalidArgument``.
public final class Snapshot: Sendable {
    let database: Database
    let serial: UInt64

    init(database: Database, serial: UInt64) {
        self.database = database
        self.serial = serial
    }

    /// Gives the snapshot back to the database. Calling it again does nothing.
    public func release() {
        database.releaseSnapshot(serial)
    }

    deinit {
        database.releaseSnapshot(serial)
    }
}
