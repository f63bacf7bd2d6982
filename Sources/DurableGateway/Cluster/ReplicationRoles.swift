import DurableEtcd

/// A node's role in etcd (`terms/<node>`): a primary at a term, or the standby of another node since a term. Only a
/// failover changes it, in one transaction with the other node's.
public enum NodeTerm: Equatable, Sendable, CustomStringConvertible {
    /// The node is primary since term `T` (`primary:T`).
    case primary(UInt64)
    /// The node is the standby of another node since term `T` (`standby:<primary>:T`).
    case standby(of: String, UInt64)

    /// Reads a role from its value in etcd; `nil` when it is neither form.
    public init?(_ bytes: [UInt8]) {
        let parts = String(decoding: bytes, as: UTF8.self).split(separator: ":", omittingEmptySubsequences: false)
        switch parts.first {
        case "primary" where parts.count == 2:
            guard let term = UInt64(parts[1]) else { return nil }
            self = .primary(term)
        case "standby" where parts.count == 3:
            guard let term = UInt64(parts[2]) else { return nil }
            self = .standby(of: String(parts[1]), term)
        default:
            return nil
        }
    }

    /// The role as etcd holds it.
    public var bytes: [UInt8] {
        switch self {
        case .primary(let term): Array("primary:\(term)".utf8)
        case .standby(let primary, let term): Array("standby:\(primary):\(term)".utf8)
        }
    }

    /// The role as etcd holds it, as text.
    public var description: String { String(decoding: bytes, as: UTF8.self) }
}

/// What a primary records of its standby in etcd (`replication/<node>`): a failover may only hand the node's slots
/// to a standby recorded in step, with the database it had then.
public struct ReplicationRecord: Codable, Equatable, Sendable {
    /// The primary's term when it wrote the record.
    public var term: UInt64
    /// Its standby's node id.
    public var standby: String
    /// The identity of the standby's database when it was recorded in step ("" otherwise).
    public var standbyDatabase: String
    /// Whether writes wait for both copies (`false`: the primary runs without its standby, or it catches up).
    public var inStep: Bool

    /// A record.
    public init(term: UInt64, standby: String, standbyDatabase: String, inStep: Bool) {
        self.term = term
        self.standby = standby
        self.standbyDatabase = standbyDatabase
        self.inStep = inStep
    }
}

/// The keys of a node's replication in etcd.
public struct ReplicationKeys: Sendable {
    /// The cluster's name in etcd.
    public let cluster: String

    /// The keys of the cluster named `cluster`.
    public init(cluster: String) { self.cluster = cluster }

    /// Where the roles are (`terms/`).
    public var terms: [UInt8] { Array("/durable/\(cluster)/terms/".utf8) }
    /// Where the primaries' records of their standbys are (`replication/`).
    public var records: [UInt8] { Array("/durable/\(cluster)/replication/".utf8) }
    /// The role of `node` (``NodeTerm``).
    public func term(_ node: String) -> [UInt8] { terms + Array(node.utf8) }
    /// The record of `node`'s standby (``ReplicationRecord``).
    public func record(_ node: String) -> [UInt8] { records + Array(node.utf8) }
    /// The membership of `node` (under its lease).
    public func member(_ node: String) -> [UInt8] { EtcdPlacementStore.memberKey(cluster: cluster, nodeID: node) }
    /// The database identity the gateways accept for `node`.
    public func identity(_ node: String) -> [UInt8] { Array("/durable/\(cluster)/identities/\(node)".utf8) }
}
