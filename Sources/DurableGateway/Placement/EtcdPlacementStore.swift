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
/// - `slots/<slot, 4 hex digits>`: the slot's owner and epoch (JSON), written once by a create-if-absent
///   transaction, so that two gateways never give one slot to two nodes.
///
/// New slots go to the live node (one with a `members/` key) that owns the fewest.
public final class EtcdPlacementStore: PlacementStore, Sendable {
    private struct State {
        var slots: [UInt16: SlotAssignment] = [:]
        var reserved: [UInt16: SlotAssignment] = [:]
        var nodes: [String: String] = [:]
        var identities: [String: String] = [:]
        var live: Set<String> = []
        var load: [String: Int] = [:]
    }

    private let client: EtcdClient
    private let prefix: String
    private let logger: Logger
    private let state = Mutex(State())
    private let watcher = Mutex<Task<Void, Never>?>(nil)

    private init(client: EtcdClient, cluster: String, logger: Logger) {
        self.client = client
        self.prefix = "/durable/\(cluster)/"
        self.logger = logger
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

    /// Marks `nodeID` alive, at `address`, for as long as `lease` is kept alive (its key goes with the lease).
    public func announceMember(nodeID: String, address: String, lease: Int64) async throws {
        try await client.put(key("members/\(nodeID)"), Array(address.utf8), lease: lease)
        // The watch brings it too; this makes the caller's own next read see it at once.
        state.withLock { Self.apply(category: "members", name: nodeID, value: Array(address.utf8), to: &$0) }
    }

    /// The nodes whose lease is alive.
    public var liveNodes: Set<String> { state.withLock { $0.live } }

    // MARK: PlacementStore

    /// Records the node's address and checks its database identity against etcd's, in transactions.
    public func register(
        nodeID: String, address: String, databaseIdentity: String?, replacingLostNode: Bool
    ) async throws -> IdentityCheck {
        let addressWrite = Transaction.Operation.put(
            key: key("nodes/\(nodeID)"), value: Array(address.utf8), lease: nil)
        guard let databaseIdentity, !databaseIdentity.isEmpty else {
            try await client.put(key("nodes/\(nodeID)"), Array(address.utf8))
            state.withLock { Self.apply(category: "nodes", name: nodeID, value: Array(address.utf8), to: &$0) }
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
            Self.apply(category: "identities", name: nodeID, value: identity, to: &state)
            Self.apply(category: "nodes", name: nodeID, value: Array(address.utf8), to: &state)
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
            state.slots.filter { $0.value.nodeID == nodeID }.map { ($0.key, $0.value.epoch) }.sorted {
                $0.slot < $1.slot
            }
        }
    }

    /// The recorded owner of `slot`.
    public func assignment(of slot: UInt16) -> SlotAssignment? {
        state.withLock { $0.slots[slot] }
    }

    /// The owner of `slot`, or a reservation for the live node with the fewest slots.
    public func owner(of slot: UInt16) throws -> (assignment: SlotAssignment, isNew: Bool) {
        try state.withLock { state in
            if let existing = state.slots[slot] ?? state.reserved[slot] { return (existing, false) }
            let candidates = state.live.map { ($0, state.load[$0] ?? 0) }
            guard let node = candidates.min(by: { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 })?.0 else {
                throw DurableObjectError(
                    .unavailable, "No live storage node is in the cluster to take a new slot.", retryable: true)
            }
            let assignment = SlotAssignment(nodeID: node, epoch: 1)
            state.reserved[slot] = assignment
            state.load[node, default: 0] += 1
            return (assignment, true)
        }
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
        do {
            let result = try await client.transaction(
                Transaction(
                    comparisons: [.absent(slotKey)],
                    success: [.put(key: slotKey, value: Array(try JSONEncoder().encode(reserved)), lease: nil)],
                    failure: [.get(key: slotKey)]))
            if result.succeeded {
                winner = reserved
            } else {
                guard case .values(let values) = result.responses.first, let stored = values.first else {
                    throw DurableObjectError(.internal, "etcd answered the claim of slot \(slot) without its owner.")
                }
                winner = try JSONDecoder().decode(SlotAssignment.self, from: Data(stored.value))
            }
        } catch {
            state.withLock { state in
                if state.reserved.removeValue(forKey: slot) != nil { state.load[reserved.nodeID, default: 1] -= 1 }
            }
            throw error
        }
        state.withLock { state in
            if state.reserved.removeValue(forKey: slot) != nil { state.load[reserved.nodeID, default: 1] -= 1 }
            Self.apply(slot: slot, winner, to: &state)
        }
        return winner
    }

    // MARK: Following etcd

    /// Reads every key of the cluster into memory; returns the revision read at.
    private func load() async throws -> Int64 {
        let (values, revision) = try await client.get(prefix: Array(prefix.utf8))
        var fresh = State()
        for value in values { apply(value, deleted: false, to: &fresh) }
        state.withLock { state in
            fresh.reserved = state.reserved
            for assignment in state.reserved.values { fresh.load[assignment.nodeID, default: 0] += 1 }
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
                    state.withLock { state in
                        for event in events { apply(event.keyValue, deleted: event.kind == .delete, to: &state) }
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

    private func apply(_ value: KeyValue, deleted: Bool, to state: inout State) {
        let name = String(decoding: value.key, as: UTF8.self)
        guard name.hasPrefix(prefix) else { return }
        let parts = name.dropFirst(prefix.count).split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return }
        if parts[0] == "slots" {
            guard let slot = UInt16(parts[1], radix: 16) else { return }
            if deleted {
                if let old = state.slots.removeValue(forKey: slot) { state.load[old.nodeID, default: 1] -= 1 }
            } else if let assignment = try? JSONDecoder().decode(SlotAssignment.self, from: Data(value.value)) {
                Self.apply(slot: slot, assignment, to: &state)
            }
            return
        }
        if deleted {
            switch parts[0] {
            case "members": state.live.remove(parts[1])
            case "nodes": state.nodes[parts[1]] = nil
            case "identities": state.identities[parts[1]] = nil
            default: break
            }
        } else {
            Self.apply(category: parts[0], name: parts[1], value: value.value, to: &state)
        }
    }

    private static func apply(category: String, name: String, value: [UInt8], to state: inout State) {
        let text = String(decoding: value, as: UTF8.self)
        switch category {
        case "members":
            state.live.insert(name)
            if state.load[name] == nil { state.load[name] = 0 }
        case "nodes":
            state.nodes[name] = text
            if state.load[name] == nil { state.load[name] = 0 }
        case "identities": state.identities[name] = text
        default: break
        }
    }

    private static func apply(slot: UInt16, _ assignment: SlotAssignment, to state: inout State) {
        if let old = state.slots[slot] {
            guard old != assignment else { return }
            state.load[old.nodeID, default: 1] -= 1
        }
        state.slots[slot] = assignment
        state.load[assignment.nodeID, default: 0] += 1
    }

    private func key(_ suffix: String) -> [UInt8] {
        Array((prefix + suffix).utf8)
    }

    private static func slotName(_ slot: UInt16) -> String {
        let hex = String(slot, radix: 16)
        return "slots/" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
