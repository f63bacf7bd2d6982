import DurableEtcd
import DurableObjects
import Foundation
import Logging
import Synchronization

/// The placement kept in etcd, shared by every gateway of a cluster: each gateway holds a copy in memory, read once
/// and then kept current by a watch, so routing reads cost nothing; writes are etcd transactions.
///
/// Keys, under `/durable/<cluster>/`:
/// - `nodes/<node>`: the address the node last registered;
/// - `identities/<node>`: the node's database identity (checked when the node registers);
/// - `members/<node>`: the node's address, attached to the node's lease: present while the node is alive;
/// - `gateways/<session>`: a gateway's RPC address, attached to its lease;
/// - `slots/<slot, 4 hex digits>`: the slot's owner and epoch (JSON), written once by a create-if-absent
///   transaction, so that two gateways never give one slot to two nodes.
///
/// New slots go to the live node (one with a `members/` key) chosen by ``NewSlotOwner``: fewest slots and least data.
public final class EtcdPlacementStore: PlacementStore, Sendable {
    private let client: EtcdClient
    private let prefix: String
    private let logger: Logger
    private let state: Mutex<EtcdPlacementView>
    private let watcher = Mutex<Task<Void, Never>?>(nil)
    private let departureObservers = Mutex<[@Sendable (String) -> Void]>([])

    private init(client: EtcdClient, cluster: String, logger: Logger) {
        self.client = client
        self.prefix = "/durable/\(cluster)/"
        self.logger = logger
        self.state = Mutex(EtcdPlacementView(prefix: prefix))
    }

    /// Reads the cluster's placement from etcd and starts following its changes.
    ///
    /// - Parameter cluster: the cluster's name: clusters that share an etcd keep apart under it.
    /// - Throws: ``EtcdError`` when etcd cannot be read.
    public static func open(client: EtcdClient, cluster: String = "default", logger: Logger) async throws
        -> EtcdPlacementStore
    {
        let store = EtcdPlacementStore(client: client, cluster: cluster, logger: logger)
        let revision = try await store.load()
        store.watcher.withLock { $0 = Task { await store.follow(from: revision + 1) } }
        return store
    }

    /// Stops following etcd.
    public func close() {
        watcher.withLock { $0 }?.cancel()
    }

    deinit {
        watcher.withLock { $0 }?.cancel()
    }

    // MARK: Membership

    /// What a live node says of itself in its `members/` key: where it listens, its database and its load.
    public struct MemberRecord: Codable, Sendable, Equatable {
        /// The node's RPC address.
        public var address: String
        /// The identity of the node's database.
        public var databaseIdentity: String
        /// Objects in the node's memory when it last wrote the record.
        public var activeObjects: Int

        /// A record.
        public init(address: String, databaseIdentity: String, activeObjects: Int) {
            self.address = address
            self.databaseIdentity = databaseIdentity
            self.activeObjects = activeObjects
        }

        /// The record as JSON (what the key holds).
        public var bytes: [UInt8] {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            return Array((try? encoder.encode(self)) ?? Data())
        }
    }

    /// The key that says node `nodeID` of `cluster` is alive (held under the node's lease).
    public static func memberKey(cluster: String = "default", nodeID: String) -> [UInt8] {
        Array("/durable/\(cluster)/members/\(nodeID)".utf8)
    }

    /// Marks `nodeID` alive, at `address`, for as long as `lease` is kept alive (its key goes with the lease).
    public func announceMember(nodeID: String, address: String, lease: Int64) async throws {
        try await client.put(key("members/\(nodeID)"), Array(address.utf8), lease: lease)
        // The watch brings it too; this makes the caller's own next read see it at once.
        state.withLock { $0.apply(category: "members", name: nodeID, value: Array(address.utf8)) }
    }

    /// The nodes whose lease is alive.
    public var liveNodes: Set<String> { state.withLock { $0.live } }

    /// The key that says the gateway of `session` in `cluster` is alive (held under the gateway's lease; its value is
    /// the gateway's RPC address).
    public static func gatewayKey(cluster: String = "default", session: String) -> [UInt8] {
        Array("/durable/\(cluster)/gateways/\(session)".utf8)
    }

    /// The gateways whose lease is alive: session → RPC address.
    public var liveGateways: [String: String] { state.withLock { $0.gateways } }

    /// Calls `observer` with the session of each gateway whose key goes (its lease expired or was revoked).
    public func onGatewayDeparture(_ observer: @escaping @Sendable (_ session: String) -> Void) {
        departureObservers.withLock { $0.append(observer) }
    }

    /// Notes a gateway's key at once (the watch brings it too).
    func noteGateway(session: String, address: String) {
        state.withLock { $0.apply(category: "gateways", name: session, value: Array(address.utf8)) }
    }

    // MARK: PlacementStore

    /// Records the node's address and checks its database identity against etcd's, in transactions.
    public func register(
        nodeID: String, address: String, databaseIdentity: String?, replacingLostNode: Bool
    ) async throws -> IdentityCheck {
        let addressWrite = Transaction.Operation.put(
            key: key("nodes/\(nodeID)"), value: Array(address.utf8), lease: nil)
        guard let databaseIdentity, !databaseIdentity.isEmpty else {
            try await client.put(key("nodes/\(nodeID)"), Array(address.utf8))
            state.withLock { $0.apply(category: "nodes", name: nodeID, value: Array(address.utf8)) }
            return .unchecked
        }
        let identityKey = key("identities/\(nodeID)")
        let identity = Array(databaseIdentity.utf8)
        let first = try await client.transaction(
            Transaction(
                comparisons: [.absent(identityKey)],
                success: [.put(key: identityKey, value: identity, lease: nil), addressWrite],
                failure: [.get(key: identityKey)]))
        var check = IdentityCheck.recorded
        if !first.succeeded {
            guard case .values(let values) = first.responses.first, let recorded = values.first else {
                throw DurableObjectError(.internal, "etcd answered the identity check of node '\(nodeID)' without it.")
            }
            let recordedIdentity = String(decoding: recorded.value, as: UTF8.self)
            if recordedIdentity == databaseIdentity {
                check = .matched
                try await client.put(key("nodes/\(nodeID)"), Array(address.utf8))
            } else if replacingLostNode {
                // Replace exactly the identity read, so that two replacements never both win.
                let replaced = try await client.transaction(
                    Transaction(
                        comparisons: [Transaction.Comparison(key: identityKey, .modRevision(recorded.modRevision))],
                        success: [.put(key: identityKey, value: identity, lease: nil), addressWrite]))
                guard replaced.succeeded else {
                    throw DurableObjectError(
                        .aborted, "Node '\(nodeID)' was registered by someone else meanwhile; register it again.",
                        retryable: true)
                }
                check = .replaced(lost: recordedIdentity)
            } else {
                throw DurableObjectError(
                    .failedPrecondition,
                    "Node '\(nodeID)' came back with database \(databaseIdentity), but this cluster knows it with "
                        + "database \(recordedIdentity): its slots' data is not in this database. Start the node on "
                        + "its own data folder, or, if that data is lost for good, start it with --replace-lost-node.")
            }
        }
        state.withLock { state in
            state.apply(category: "identities", name: nodeID, value: identity)
            state.apply(category: "nodes", name: nodeID, value: Array(address.utf8))
        }
        return check
    }

    /// The registered nodes and their addresses, as last seen in etcd.
    public var nodes: [String: String] { state.withLock { $0.nodes } }

    /// The database identity etcd has for `nodeID`.
    public func databaseIdentity(of nodeID: String) -> String? {
        state.withLock { $0.identities[nodeID] }
    }

    /// The recorded slots of `nodeID`, with their epochs, in slot order.
    public func slots(of nodeID: String) -> [(slot: UInt16, epoch: UInt64)] {
        state.withLock { state in
            state.slots.slots(of: nodeID)
        }
    }

    /// The recorded owner of `slot`.
    public func assignment(of slot: UInt16) -> SlotAssignment? {
        state.withLock { $0.slots[slot] }
    }

    /// Records how many bytes each node stores now.
    public func recordStoredBytes(_ bytes: [String: UInt64]) {
        state.withLock { $0.storedBytes.merge(bytes) { $1 } }
    }

    /// The owner of `slot`, or a reservation for the live node chosen by ``NewSlotOwner``.
    public func owner(of slot: UInt16) throws -> (assignment: SlotAssignment, isNew: Bool) {
        try state.withLock { try $0.owner(of: slot) }
    }

    /// Claims `slot` for its reserved owner with a create-if-absent transaction; when another gateway claimed it
    /// first, returns that owner instead.
    public func record(_ slot: UInt16) async throws -> SlotAssignment {
        guard let reserved = state.withLock({ $0.reserved[slot] }) else {
            guard let recorded = assignment(of: slot) else {
                throw DurableObjectError(.internal, "Slot \(slot) was neither reserved nor recorded.")
            }
            return recorded
        }
        let slotKey = key(Self.slotName(slot))
        let winner: SlotAssignment
        let revision: Int64
        do {
            let result = try await client.transaction(
                Transaction(
                    comparisons: [.absent(slotKey)],
                    success: [.put(key: slotKey, value: Array(try JSONEncoder().encode(reserved)), lease: nil)],
                    failure: [.get(key: slotKey)]))
            if result.succeeded {
                winner = reserved
                revision = result.revision
            } else {
                guard case .values(let values) = result.responses.first, let stored = values.first else {
                    throw DurableObjectError(.internal, "etcd answered the claim of slot \(slot) without its owner.")
                }
                winner = try JSONDecoder().decode(SlotAssignment.self, from: Data(stored.value))
                revision = stored.modRevision
            }
        } catch {
            state.withLock { $0.release(slot) }
            throw error
        }
        state.withLock { state in
            state.release(slot)
            state.apply(slot: slot, winner, revision: revision)
        }
        return winner
    }

    /// Replaces the record of `slot` in one transaction that requires etcd to hold the record this gateway knows
    /// (by its modification revision), which must be `expected`.
    public func replace(_ slot: UInt16, expected: SlotAssignment, with new: SlotAssignment) async throws -> Bool {
        let slotKey = key(Self.slotName(slot))
        guard let known = state.withLock({ $0.slots[slot] == expected ? $0.slotRevisions[slot] : nil }) else {
            return false
        }
        let result = try await client.transaction(
            Transaction(
                comparisons: [Transaction.Comparison(key: slotKey, .modRevision(known))],
                success: [.put(key: slotKey, value: Array(try JSONEncoder().encode(new)), lease: nil)]))
        if result.succeeded { state.withLock { $0.apply(slot: slot, new, revision: result.revision) } }
        return result.succeeded
    }

    // MARK: Following etcd

    /// Reads every key of the cluster into memory; returns the revision read at.
    private func load() async throws -> Int64 {
        let (values, revision) = try await client.get(prefix: Array(prefix.utf8))
        var fresh = EtcdPlacementView(prefix: prefix)
        for value in values { fresh.apply(value, deleted: false) }
        state.withLock { state in
            fresh.keepReservations(of: state)
            state = fresh
        }
        return revision
    }

    /// Applies etcd's changes as they come; after a broken watch, reads everything again and watches on.
    private func follow(from revision: Int64) async {
        var next = revision
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                for try await events in client.watch(prefix: Array(prefix.utf8), fromRevision: next) {
                    let departed = state.withLock { state -> [String] in
                        let before = state.gateways
                        for event in events { state.apply(event.keyValue, deleted: event.kind == .delete) }
                        return before.keys.filter { state.gateways[$0] == nil }
                    }
                    if !departed.isEmpty {
                        let observers = departureObservers.withLock { $0 }
                        for session in departed {
                            logger.notice("a gateway left the cluster", metadata: ["session": "\(session)"])
                            for observer in observers { observer(session) }
                        }
                    }
                    if let last = events.last { next = last.keyValue.modRevision + 1 }
                    delay = .milliseconds(100)
                }
            } catch {
                if Task.isCancelled { return }
                logger.notice(
                    "the etcd watch of the placement broke; reading it again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
                if let revision = try? await load() { next = revision + 1 }
            }
        }
    }

    private func key(_ suffix: String) -> [UInt8] {
        Array((prefix + suffix).utf8)
    }

    private static func slotName(_ slot: UInt16) -> String {
        let hex = String(slot, radix: 16)
        return "slots/" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
