import Foundation

/// A key and its value as etcd stores them, with the revisions that order changes.
public struct KeyValue: Sendable, Equatable {
    /// The key's bytes.
    public var key: [UInt8]
    /// The value's bytes.
    public var value: [UInt8]
    /// The store's revision when the key was created (since its last deletion).
    public var createRevision: Int64
    /// The store's revision of the key's last change.
    public var modRevision: Int64
    /// How many times the key was written since it was created.
    public var version: Int64
    /// The lease the key is attached to (0 for none).
    public var lease: Int64
}

/// One change of a watched key.
public struct WatchEvent: Sendable, Equatable {
    /// A write (`put`) or a deletion (`delete`, the value is then empty).
    public enum Kind: Sendable, Equatable {
        case put
        case delete
    }

    /// What happened.
    public var kind: Kind
    /// The key as it is after the change (its revisions tell when the change happened).
    public var keyValue: KeyValue
}

/// An etcd transaction: comparisons, then the operations to run when all hold (`success`) or when one does not
/// (`failure`).
public struct Transaction: Sendable {
    /// A condition on one key.
    public struct Comparison: Sendable {
        /// What of the key is compared.
        public enum Target: Sendable {
            /// The revision the key was created at (0: the key does not exist).
            case createRevision(Int64)
            /// The revision of the key's last change.
            case modRevision(Int64)
            /// How many times the key was written (0: the key does not exist).
            case version(Int64)
            /// The key's value.
            case value([UInt8])
        }

        /// How the key's target compares with the given one.
        public enum Result: String, Sendable {
            case equal = "EQUAL"
            case greater = "GREATER"
            case less = "LESS"
            case notEqual = "NOT_EQUAL"
        }

        /// The key compared.
        public var key: [UInt8]
        /// What is compared, with the value it is compared to.
        public var target: Target
        /// The relation that must hold.
        public var result: Result

        /// A comparison of `key`'s `target` by `result`.
        public init(key: [UInt8], _ target: Target, _ result: Result = .equal) {
            self.key = key
            self.target = target
            self.result = result
        }

        /// Holds when `key` does not exist.
        public static func absent(_ key: [UInt8]) -> Comparison {
            Comparison(key: key, .createRevision(0))
        }
    }

    /// One operation of a transaction.
    public enum Operation: Sendable {
        /// Sets a key, attached to a lease when one is given.
        case put(key: [UInt8], value: [UInt8], lease: Int64?)
        /// Reads a key.
        case get(key: [UInt8])
        /// Reads every key under a prefix.
        case getPrefix([UInt8])
        /// Deletes a key.
        case delete(key: [UInt8])
        /// Deletes every key under a prefix.
        case deletePrefix([UInt8])
    }

    /// The conditions, all of which must hold.
    public var comparisons: [Comparison]
    /// What runs when they hold.
    public var success: [Operation]
    /// What runs when one does not.
    public var failure: [Operation]

    /// A transaction.
    public init(comparisons: [Comparison], success: [Operation], failure: [Operation] = []) {
        self.comparisons = comparisons
        self.success = success
        self.failure = failure
    }
}

/// What a transaction did.
public struct TransactionResult: Sendable {
    /// The answer of one operation, in the order of the operations that ran.
    public enum Response: Sendable, Equatable {
        /// What a `get` or `getPrefix` read.
        case values([KeyValue])
        /// A `put` was done.
        case put
        /// A `delete` or `deletePrefix` deleted this many keys.
        case deleted(Int64)
    }

    /// Whether the comparisons held (the `success` operations ran).
    public var succeeded: Bool
    /// The store's revision after the transaction.
    public var revision: Int64
    /// The answers of the operations that ran.
    public var responses: [Response]
}

// MARK: JSON of etcd's gateway (proto3 JSON: 64-bit integers as strings, bytes as base64, defaults left out)

/// A 64-bit integer as etcd's gateway writes it (a string) or reads it (a string or a number).
struct EtcdInt: Codable, Sendable {
    var value: Int64

    init(_ value: Int64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self), let number = Int64(text) {
            value = number
        } else {
            value = try container.decode(Int64.self)
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(value))
    }
}

struct ResponseHeader: Decodable {
    var revision: EtcdInt?
}

struct HeaderReply: Decodable {
    var header: ResponseHeader?
}

struct ErrorReply: Decodable {
    var error: String?
    var message: String?
}

struct WireKeyValue: Decodable {
    var key: Data?
    var value: Data?
    var create_revision: EtcdInt?
    var mod_revision: EtcdInt?
    var version: EtcdInt?
    var lease: EtcdInt?
}

extension KeyValue {
    init(_ wire: WireKeyValue) {
        self.init(
            key: Array(wire.key ?? Data()), value: Array(wire.value ?? Data()),
            createRevision: wire.create_revision?.value ?? 0, modRevision: wire.mod_revision?.value ?? 0,
            version: wire.version?.value ?? 0, lease: wire.lease?.value ?? 0)
    }
}

struct RangeRequest: Encodable {
    var key: Data
    var range_end: Data?

    init(key: [UInt8], rangeEnd: [UInt8]?) {
        self.key = Data(key)
        self.range_end = rangeEnd.map { Data($0) }
    }
}

struct RangeReply: Decodable {
    var header: ResponseHeader?
    var kvs: [WireKeyValue]?
}

struct PutRequest: Encodable {
    var key: Data
    var value: Data
    var lease: EtcdInt?

    init(key: [UInt8], value: [UInt8], lease: EtcdInt?) {
        self.key = Data(key)
        self.value = Data(value)
        self.lease = lease
    }
}

struct DeleteReply: Decodable {
    var deleted: EtcdInt?
}

struct TransactionRequest: Encodable {
    struct Compare: Encodable {
        var key: Data
        var target: String
        var result: String
        var create_revision: EtcdInt?
        var mod_revision: EtcdInt?
        var version: EtcdInt?
        var value: Data?
    }

    struct Operation: Encodable {
        var request_put: PutRequest?
        var request_range: RangeRequest?
        var request_delete_range: RangeRequest?
    }

    var compare: [Compare]
    var success: [Operation]
    var failure: [Operation]

    init(_ transaction: Transaction) {
        compare = transaction.comparisons.map { comparison in
            var compare = Compare(
                key: Data(comparison.key), target: "", result: comparison.result.rawValue)
            switch comparison.target {
            case .createRevision(let revision):
                compare.target = "CREATE"
                compare.create_revision = EtcdInt(revision)
            case .modRevision(let revision):
                compare.target = "MOD"
                compare.mod_revision = EtcdInt(revision)
            case .version(let version):
                compare.target = "VERSION"
                compare.version = EtcdInt(version)
            case .value(let value):
                compare.target = "VALUE"
                compare.value = Data(value)
            }
            return compare
        }
        success = transaction.success.map(Self.operation)
        failure = transaction.failure.map(Self.operation)
    }

    private static func operation(_ operation: Transaction.Operation) -> Operation {
        switch operation {
        case .put(let key, let value, let lease):
            return Operation(request_put: PutRequest(key: key, value: value, lease: lease.map(EtcdInt.init)))
        case .get(let key):
            return Operation(request_range: RangeRequest(key: key, rangeEnd: nil))
        case .getPrefix(let prefix):
            return Operation(
                request_range: RangeRequest(key: prefix, rangeEnd: EtcdClient.rangeEnd(ofPrefix: prefix)))
        case .delete(let key):
            return Operation(request_delete_range: RangeRequest(key: key, rangeEnd: nil))
        case .deletePrefix(let prefix):
            return Operation(
                request_delete_range: RangeRequest(key: prefix, rangeEnd: EtcdClient.rangeEnd(ofPrefix: prefix)))
        }
    }
}

struct TransactionReply: Decodable {
    struct WireResponse: Decodable {
        var response_range: RangeReply?
        var response_put: HeaderReply?
        var response_delete_range: DeleteReply?
    }

    var header: ResponseHeader?
    var succeeded: Bool?
    var responses: [WireResponse]?
}

extension TransactionResult.Response {
    init(_ wire: TransactionReply.WireResponse) {
        if let range = wire.response_range {
            self = .values((range.kvs ?? []).map(KeyValue.init))
        } else if let deleted = wire.response_delete_range {
            self = .deleted(deleted.deleted?.value ?? 0)
        } else {
            self = .put
        }
    }
}

struct LeaseGrantRequest: Encodable {
    var TTL: EtcdInt
}

struct LeaseGrantReply: Decodable {
    var ID: EtcdInt?
    var TTL: EtcdInt?
    var error: String?
}

struct LeaseIDRequest: Encodable {
    var ID: EtcdInt
}

struct LeaseKeepAliveEnvelope: Decodable {
    struct Result: Decodable {
        var ID: EtcdInt?
        var TTL: EtcdInt?
    }
    var result: Result?
}

struct WatchRequest: Encodable {
    struct Create: Encodable {
        var key: Data
        var range_end: Data
        var start_revision: EtcdInt

        init(key: [UInt8], range_end: [UInt8], start_revision: EtcdInt) {
            self.key = Data(key)
            self.range_end = Data(range_end)
            self.start_revision = start_revision
        }
    }
    var create_request: Create
}

struct WatchEnvelope: Decodable {
    struct Result: Decodable {
        struct Event: Decodable {
            var type: String?
            var kv: WireKeyValue?
        }
        var created: Bool?
        var canceled: Bool?
        var cancel_reason: String?
        var compact_revision: EtcdInt?
        var events: [Event]?
    }
    struct Failure: Decodable {
        var message: String?
    }
    var result: Result?
    var error: Failure?
}

extension WatchEvent {
    init(_ wire: WatchEnvelope.Result.Event) {
        self.init(kind: wire.type == "DELETE" ? .delete : .put, keyValue: KeyValue(wire.kv ?? WireKeyValue()))
    }
}

/// What one etcd member says of itself and of the cluster's leader.
public struct MemberStatus: Sendable, Equatable {
    /// The member's endpoint (as the client was given it).
    public var endpoint: String
    /// The member's id (etcd's unsigned 64-bit id, in decimal).
    public var memberID: String
    /// The id of the member that leads the cluster now, as this member sees it ("0" during an election).
    public var leader: String
    /// etcd's version.
    public var version: String
    /// The member's revision.
    public var revision: Int64

    /// Whether this member is the leader.
    public var isLeader: Bool { !memberID.isEmpty && memberID == leader }
}

struct StatusReply: Decodable {
    struct Header: Decodable {
        var member_id: String?
        var revision: EtcdInt?
    }
    var header: Header?
    var leader: String?
    var version: String?
}

struct EmptyRequest: Encodable {}

struct LeaseTimeToLiveReply: Decodable {
    var TTL: EtcdInt?
    var grantedTTL: EtcdInt?
}
