/// A key and its value, as a scan returns them.
public struct KeyValue: Hashable, Sendable {
    /// The key's bytes.
    public var key: [UInt8]
    /// The value's bytes.
    public var value: [UInt8]

    /// Creates a pair.
    public init(key: [UInt8], value: [UInt8]) {
        self.key = key
        self.value = value
    }
}

/// What a scan visits: a range of keys in byte order, optionally narrowed to a prefix, walked forwards or
/// backwards, and cut after a number of entries.
public struct ScanOptions: Sendable {
    /// The smallest key to visit (inclusive); `nil` starts at the first key.
    public var lowerBound: [UInt8]?
    /// The key at which to stop (exclusive); `nil` runs to the last key.
    public var upperBound: [UInt8]?
    /// Only keys that begin with these bytes; combined with the bounds (both must hold).
    public var prefix: [UInt8]?
    /// Walk from the top of the range down.
    public var reverse: Bool
    /// Stop after this many entries, counted from where the walk starts; `nil` for no limit.
    public var limit: Int?
    /// Read as of this snapshot instead of the latest state.
    public var snapshot: Snapshot?

    /// Creates scan options; with no arguments, a forward scan of the whole column family.
    public init(
        lowerBound: [UInt8]? = nil,
        upperBound: [UInt8]? = nil,
        prefix: [UInt8]? = nil,
        reverse: Bool = false,
        limit: Int? = nil,
        snapshot: Snapshot? = nil
    ) {
        self.lowerBound = lowerBound
        self.upperBound = upperBound
        self.prefix = prefix
        self.reverse = reverse
        self.limit = limit
        self.snapshot = snapshot
    }

    /// The bounds after the prefix is folded in: `nil` when the range is certainly empty.
    var effectiveBounds: (lower: [UInt8]?, upper: [UInt8]?)? {
        var lower = lowerBound
        var upper = upperBound
        if let prefix, !prefix.isEmpty {
            if lower == nil || lower!.lexicographicallyPrecedes(prefix) { lower = prefix }
            if let end = KeyBytes.successor(ofPrefix: prefix) {
                if upper == nil || end.lexicographicallyPrecedes(upper!) { upper = end }
            }
        }
        if let lower, let upper, !lower.lexicographicallyPrecedes(upper) { return nil }
        return (lower, upper)
    }
}

/// Helpers on keys as byte strings, ordered the way RocksDB's default comparator orders them.
public enum KeyBytes {
    /// The smallest byte string greater than every string that begins with `prefix`, or `nil` when there is
    /// none (the prefix is empty or all `0xFF`).
    public static func successor(ofPrefix prefix: [UInt8]) -> [UInt8]? {
        var bytes = prefix
        while let last = bytes.last {
            if last == 0xFF {
                bytes.removeLast()
            } else {
                bytes[bytes.count - 1] = last + 1
                return bytes
            }
        }
        return nil
    }
}
