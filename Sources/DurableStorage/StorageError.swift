/// An error raised by the storage engine.
///
/// Every failure reported by RocksDB becomes a `StorageError` with code ``Code-swift.struct/rocksDB`` and
/// RocksDB's own message, so the cause (a held lock, a missing folder, a corrupt file) stays readable.
public struct StorageError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What kind of failure this is. New codes may be added; switch with a `default` branch.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }

        /// RocksDB reported an error; the message is RocksDB's.
        public static let rocksDB = Code("rocksDB")
        /// The database was closed before or during the call.
        public static let closed = Code("closed")
        /// No column family of that name exists.
        public static let columnFamilyNotFound = Code("columnFamilyNotFound")
        /// A column family of that name exists already.
        public static let columnFamilyExists = Code("columnFamilyExists")
        /// The column family was dropped, or belongs to another database handle.
        public static let columnFamilyUnavailable = Code("columnFamilyUnavailable")
        /// The caller passed a value the engine cannot use (an empty name, a non-empty folder, …).
        public static let invalidArgument = Code("invalidArgument")
        /// A write was refused before it reached the disk (for example by an injected fault).
        public static let writeRejected = Code("writeRejected")

        /// The code's name.
        public var description: String { name }
    }

    /// What kind of failure this is.
    public var code: Code
    /// A human-readable explanation that names the problem.
    public var message: String

    /// Creates an error with a code and a message.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The message, prefixed by the code.
    public var description: String { "\(code): \(message)" }
}
