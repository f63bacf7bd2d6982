import CRocksDB

/// A column family of an open ``Database``: a separate ordered key space with its own files.
///
/// Obtain one from ``Database/columnFamily(named:)``, ``Database/createColumnFamily(named:)`` or
/// ``Database/ensureColumnFamily(named:)``. A handle stays valid until the column family is dropped or the
/// database is closed; after that, calls that use it throw ``StorageError/Code-swift.struct/columnFamilyUnavailable``
/// or ``StorageError/Code-swift.struct/closed`` instead of touching freed memory.
public final class ColumnFamily: Hashable, CustomStringConvertible, @unchecked Sendable {
    /// The column family's name.
    public let name: String
    /// The C handle. Only read while the owning database's lock is held.
    let handle: OpaquePointer
    /// The ``Database/instanceID`` of the database that opened it.
    let databaseID: UInt64
    /// Set under the database's exclusive lock when the family is dropped or the database closes.
    var isInvalidated = false

    init(name: String, handle: OpaquePointer, databaseID: UInt64) {
        self.name = name
        self.handle = handle
        self.databaseID = databaseID
    }

    /// Two handles are equal when they are the same handle.
    public static func == (lhs: ColumnFamily, rhs: ColumnFamily) -> Bool { lhs === rhs }

    /// Hashes the handle's identity.
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }

    /// The column family's name.
    public var description: String { name }
}
