/// Options of a storage read (`get`).
public struct StorageReadOptions: Sendable {
    /// Let other events reach the object while this read is in progress (lifts the input gate for it).
    public var allowConcurrency: Bool
    /// A hint that the value will not be read again soon: it is not kept in the cache. Never changes results.
    public var noCache: Bool

    /// Creates read options; by default the input gate holds and the value is cached.
    public init(allowConcurrency: Bool = false, noCache: Bool = false) {
        self.allowConcurrency = allowConcurrency
        self.noCache = noCache
    }
}

/// Options of a storage write (`put`, `delete`, `deleteAll`).
public struct StorageWriteOptions: Sendable {
    /// Let outgoing messages leave before this write is durable (lifts the output gate for it).
    public var allowUnconfirmed: Bool
    /// A hint that the value will not be read again soon. Never changes results.
    public var noCache: Bool

    /// Creates write options; by default outgoing messages wait for the write to be durable.
    public init(allowUnconfirmed: Bool = false, noCache: Bool = false) {
        self.allowUnconfirmed = allowUnconfirmed
        self.noCache = noCache
    }
}

/// Options of `list()`: which keys, in which order, how many.
///
/// Keys are compared as raw UTF-8 bytes. `start` and `startAfter` exclude each other.
public struct StorageListOptions: Sendable {
    /// The first key to include (inclusive).
    public var start: String?
    /// List keys after this one (exclusive).
    public var startAfter: String?
    /// The key to stop before (exclusive).
    public var end: String?
    /// Only keys that begin with this string.
    public var prefix: String?
    /// Walk the range from the top down; `limit` then counts from the top.
    public var reverse: Bool
    /// At most this many entries (must be positive).
    public var limit: Int?
    /// Let other events reach the object while the list is read.
    public var allowConcurrency: Bool
    /// A hint that the values will not be read again soon.
    public var noCache: Bool

    /// Creates list options; with no arguments, every key in ascending order.
    public init(
        start: String? = nil,
        startAfter: String? = nil,
        end: String? = nil,
        prefix: String? = nil,
        reverse: Bool = false,
        limit: Int? = nil,
        allowConcurrency: Bool = false,
        noCache: Bool = false
    ) {
        self.start = start
        self.startAfter = startAfter
        self.end = end
        self.prefix = prefix
        self.reverse = reverse
        self.limit = limit
        self.allowConcurrency = allowConcurrency
        self.noCache = noCache
    }
}

/// An ordered map of keys to values, as `get(keys)` and `list()` return it: keys in ascending byte order (or
/// descending for a reverse list), missing keys omitted.
public struct StorageEntries<Value: Sendable>: RandomAccessCollection, Sendable {
    /// The entries in order.
    public let elements: [(key: String, value: Value)]

    /// Creates entries from pairs already in order.
    public init(_ elements: [(key: String, value: Value)]) { self.elements = elements }

    /// The first index.
    public var startIndex: Int { elements.startIndex }
    /// One past the last index.
    public var endIndex: Int { elements.endIndex }
    /// The entry at `position`.
    public subscript(position: Int) -> (key: String, value: Value) { elements[position] }

    /// The value stored under `key`, if it is among the entries.
    public subscript(key: String) -> Value? { elements.first { $0.key == key }?.value }

    /// The keys, in order.
    public var keys: [String] { elements.map(\.key) }
    /// The values, in order.
    public var values: [Value] { elements.map(\.value) }
}
