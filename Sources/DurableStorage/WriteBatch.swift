import CRocksDB

/// An ordered list of writes that the database applies atomically: after a crash either every operation of
/// the batch is on disk or none is.
///
/// A batch is a plain value: building one touches no C state, so it can be made on any task and handed to a
/// ``GroupCommitter`` or to ``Database/write(_:sync:)``. Operations may span several column families.
public struct WriteBatch: Sendable {
    /// One operation of a batch.
    public enum Operation: Sendable {
        /// Store `value` under `key`.
        case put(ColumnFamily, key: [UInt8], value: [UInt8])
        /// Remove `key`.
        case delete(ColumnFamily, key: [UInt8])
        /// Remove every key `k` with `start <= k < end`.
        case deleteRange(ColumnFamily, start: [UInt8], end: [UInt8])
    }

    /// The operations, in the order they apply.
    public private(set) var operations: [Operation] = []
    /// The bytes of keys and values the batch carries.
    public private(set) var byteCount = 0

    /// Creates an empty batch.
    public init() {}

    /// Whether the batch has no operation.
    public var isEmpty: Bool { operations.isEmpty }
    /// The number of operations.
    public var count: Int { operations.count }

    /// Adds a put of `value` under `key` in `family`.
    public mutating func put(_ value: [UInt8], forKey key: [UInt8], in family: ColumnFamily) {
        operations.append(.put(family, key: key, value: value))
        byteCount += key.count + value.count
    }

    /// Adds a delete of `key` in `family`.
    public mutating func delete(_ key: [UInt8], in family: ColumnFamily) {
        operations.append(.delete(family, key: key))
        byteCount += key.count
    }

    /// Adds a delete of every key in `start ..< end` in `family`.
    public mutating func deleteRange(from start: [UInt8], to end: [UInt8], in family: ColumnFamily) {
        operations.append(.deleteRange(family, start: start, end: end))
        byteCount += start.count + end.count
    }

    /// Appends the operations of `other` after this batch's.
    public mutating func append(contentsOf other: WriteBatch) {
        operations.append(contentsOf: other.operations)
        byteCount += other.byteCount
    }

    /// The column families the batch touches.
    var families: some Sequence<ColumnFamily> {
        operations.lazy.map { operation in
            switch operation {
            case .put(let family, _, _), .delete(let family, _), .deleteRange(let family, _, _): family
            }
        }
    }

    /// Adds the operations to a C write batch.
    func encode(into batch: OpaquePointer) {
        for operation in operations {
            switch operation {
            case .put(let family, let key, let value):
                key.withCChars { k, kl in
                    value.withCChars { v, vl in rocksdb_writebatch_put_cf(batch, family.handle, k, kl, v, vl) }
                }
            case .delete(let family, let key):
                key.withCChars { k, kl in rocksdb_writebatch_delete_cf(batch, family.handle, k, kl) }
            case .deleteRange(let family, let start, let end):
                start.withCChars { s, sl in
                    end.withCChars { e, el in rocksdb_writebatch_delete_range_cf(batch, family.handle, s, sl, e, el) }
                }
            }
        }
    }
}
