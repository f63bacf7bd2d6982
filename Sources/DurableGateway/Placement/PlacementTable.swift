import DurableObjects
import DurableStorage
import Foundation
import Synchronization

/// Which node owns each slot of the id space, with the slot's epoch, and where each node listens; kept in the
/// gateway's database.
///
/// Slots are assigned lazily: the first call for an object in an unassigned slot gives the slot, at epoch 1, to the
/// node with the fewest slots and the least stored data (``NewSlotOwner``). An assigned slot moves only with its
/// data (`durable slots move`, `durable rebalance`), so an object is never silently re-created elsewhere: when its
/// node is down, its calls fail (retryably) until the node is back.
public final class PlacementTable: PlacementStore, Sendable {
    /// A slot's owner.
    public typealias Assignment = SlotAssignment

    private struct State {
        /// The assignments on disk.
        var slots: [UInt16: Assignment] = [:]
        /// New assignments being written (``owner(of:)`` made them; ``record(_:)`` writes them).
        var reserved: [UInt16: Assignment] = [:]
        var nodes: [String: String] = [:]
        var identities: [String: String] = [:]
        /// Slots per node, kept up to date so that choosing the least-loaded node costs nothing per call.
        var load: [String: Int] = [:]
        /// Bytes each node stores, as it last said.
        var storedBytes: [String: UInt64] = [:]
    }

    /// The whole table as one JSON value: how versions before per-slot records stored it (read once, then
    /// rewritten as records).
    private struct LegacyState: Codable {
        var slots: [UInt16: Assignment] = [:]
        var nodes: [String: String] = [:]
    }

    private static let legacyKey = Array("placement/state".utf8)
    private static let slotPrefix = Array("slot/".utf8)
    private static let nodePrefix = Array("node/".utf8)
    private static let identityPrefix = Array("identity/".utf8)
    private let database: Database
    private let family: ColumnFamily
    private let state: Mutex<State>

    /// Opens the table stored in `database`.
    ///
    /// Each slot and each node is its own record, so recording a new assignment writes a few bytes, whatever the
    /// size of the table.
    public init(database: Database) throws {
        self.database = database
        family = try database.ensureColumnFamily(named: "placement")
        var state = State()
        let decoder = JSONDecoder()
        for entry in try database.scan(in: family, ScanOptions(prefix: Self.slotPrefix)) {
            let (key, value) = (entry.key, entry.value)
            guard key.count == Self.slotPrefix.count + 2 else { continue }
            let slot = UInt16(key[key.count - 2]) << 8 | UInt16(key[key.count - 1])
            state.slots[slot] = try decoder.decode(Assignment.self, from: Data(value))
        }
        for entry in try database.scan(in: family, ScanOptions(prefix: Self.nodePrefix)) {
            let (key, value) = (entry.key, entry.value)
            state.nodes[String(decoding: key.dropFirst(Self.nodePrefix.count), as: UTF8.self)] = String(
                decoding: value, as: UTF8.self)
        }
        for entry in try database.scan(in: family, ScanOptions(prefix: Self.identityPrefix)) {
            state.identities[String(decoding: entry.key.dropFirst(Self.identityPrefix.count), as: UTF8.self)] =
                String(decoding: entry.value, as: UTF8.self)
        }
        if let bytes = try database.get(Self.legacyKey, in: family) {
            let legacy = try decoder.decode(LegacyState.self, from: Data(bytes))
            var batch = WriteBatch()
            for (slot, assignment) in legacy.slots where state.slots[slot] == nil {
                state.slots[slot] = assignment
                batch.put(try Self.record(assignment), forKey: Self.slotKey(slot), in: family)
            }
            for (node, address) in legacy.nodes where state.nodes[node] == nil {
                state.nodes[node] = address
                batch.put(Array(address.utf8), forKey: Self.nodePrefix + Array(node.utf8), in: family)
            }
            batch.delete(Self.legacyKey, in: family)
            try database.write(batch, sync: true)
        }
        for node in state.nodes.keys { state.load[node] = 0 }
        for assignment in state.slots.values { state.load[assignment.nodeID, default: 0] += 1 }
        self.state = Mutex(state)
    }

    /// Records where `nodeID` listens (a restarted node may have a new address) and checks that it comes with the
    /// database it had: the database identity recorded for the node id the first time it registered.
    ///
    /// - Parameters:
    ///   - databaseIdentity: the identity of the node's database (nil from a node too old to send one: not checked).
    ///   - replacingLostNode: the operator says this node replaces a lost one: a new identity replaces the recorded
    ///     one instead of being refused.
    /// - Returns: what was done with the identity.
    /// - Throws: `FAILED_PRECONDITION` naming both identities when the node came back with another database and
    ///   `replacingLostNode` is not set; nothing is recorded then.
    @discardableResult
    public func register(
        nodeID: String, address: String, databaseIdentity: String? = nil, replacingLostNode: Bool = false
    ) throws -> IdentityCheck {
        try state.withLock { state in
            var check = IdentityCheck.unchecked
            if let databaseIdentity, !databaseIdentity.isEmpty {
                switch state.identities[nodeID] {
                case nil: check = .recorded
                case databaseIdentity: check = .matched
                case let recorded? where replacingLostNode: check = .replaced(lost: recorded)
                case let recorded?:
                    throw DurableObjectError(
                        .failedPrecondition,
                        "Node '\(nodeID)' came back with database \(databaseIdentity), but this cluster knows it with "
                            + "database \(recorded): its slots' data is not in this database. Start the node on its "
                            + "own data folder, or, if that data is lost for good, start it with --replace-lost-node.")
                }
            }
            var batch = WriteBatch()
            batch.put(Array(address.utf8), forKey: Self.nodePrefix + Array(nodeID.utf8), in: family)
            if let databaseIdentity, check != .matched, check != .unchecked {
                batch.put(Array(databaseIdentity.utf8), forKey: Self.identityPrefix + Array(nodeID.utf8), in: family)
            }
            try database.write(batch, sync: true)
            state.nodes[nodeID] = address
            if let databaseIdentity, check != .unchecked { state.identities[nodeID] = databaseIdentity }
            if state.load[nodeID] == nil { state.load[nodeID] = 0 }
            return check
        }
    }

    /// The database identity recorded for `nodeID`, if any.
    public func databaseIdentity(of nodeID: String) -> String? {
        state.withLock { $0.identities[nodeID] }
    }

    /// The registered nodes and their addresses.
    public var nodes: [String: String] { state.withLock { $0.nodes } }

    /// The slots `nodeID` owns, with their epochs (recorded assignments only).
    public func slots(of nodeID: String) -> [(slot: UInt16, epoch: UInt64)] {
        state.withLock { state in
            state.slots.slots(of: nodeID)
        }
    }

    /// The owner of `slot`, if it has one on disk.
    public func assignment(of slot: UInt16) -> Assignment? {
        state.withLock { $0.slots[slot] }
    }

    /// The owner of `slot`, choosing one now (the least-loaded node) when it has none.
    ///
    /// A new assignment is only reserved: the caller must write it with ``record(_:)`` before anyone is told about
    /// it, so that a restarted gateway never gives the slot to another node. Until then ``assignment(of:)`` and
    /// ``slots(of:)`` do not show it, and further calls here return it with `isNew` false.
    /// - Returns: the assignment, and whether it was made by this call (the caller must then record it and tell
    ///   the node).
    /// - Throws: `UNAVAILABLE` when no node has registered yet.
    public func owner(of slot: UInt16) throws -> (assignment: Assignment, isNew: Bool) {
        try state.withLock { state in
            if let existing = state.slots[slot] ?? state.reserved[slot] { return (existing, false) }
            guard
                let node = NewSlotOwner.choose(
                    among: state.load.keys, slots: state.load, storedBytes: state.storedBytes)
            else {
                throw DurableObjectError(.unavailable, "No storage node has joined the cluster yet.", retryable: true)
            }
            let assignment = Assignment(nodeID: node, epoch: 1)
            state.reserved[slot] = assignment
            state.load[node, default: 0] += 1
            return (assignment, true)
        }
    }

    /// Records how many bytes each node stores now.
    public func recordStoredBytes(_ bytes: [String: UInt64]) {
        state.withLock { $0.storedBytes.merge(bytes) { $1 } }
    }

    /// Writes the assignment ``owner(of:)`` reserved for `slot` (synced, on a thread of its own, outside the
    /// table's lock). When the write fails, the reservation is dropped, so that the next call chooses again.
    ///
    /// - Throws: the storage error of the write.
    @discardableResult
    public func record(_ slot: UInt16) async throws -> Assignment {
        guard let assignment = state.withLock({ $0.reserved[slot] }) else {
            guard let recorded = self.assignment(of: slot) else {
                throw DurableObjectError(.internal, "Slot \(slot) was neither reserved nor recorded.")
            }
            return recorded
        }
        do {
            var batch = WriteBatch()
            batch.put(try Self.record(assignment), forKey: Self.slotKey(slot), in: family)
            try await database.writeSynced(batch)
        } catch {
            state.withLock { state in
                state.reserved[slot] = nil
                state.load[assignment.nodeID, default: 1] -= 1
            }
            throw error
        }
        state.withLock { state in
            state.reserved[slot] = nil
            state.slots[slot] = assignment
        }
        return assignment
    }

    /// Replaces the record of `slot` if it is still `expected` (synced write; the slot mover runs one step of one
    /// slot at a time).
    public func replace(_ slot: UInt16, expected: Assignment, with new: Assignment) async throws -> Bool {
        guard state.withLock({ $0.slots[slot] == expected }) else { return false }
        var batch = WriteBatch()
        batch.put(try Self.record(new), forKey: Self.slotKey(slot), in: family)
        try await database.writeSynced(batch)
        state.withLock { state in
            if let old = state.slots[slot] { state.load[old.nodeID, default: 1] -= 1 }
            state.slots[slot] = new
            state.load[new.nodeID, default: 0] += 1
        }
        return true
    }

    private static func slotKey(_ slot: UInt16) -> [UInt8] {
        slotPrefix + [UInt8(slot >> 8), UInt8(slot & 0xff)]
    }

    private static func record(_ assignment: Assignment) throws -> [UInt8] {
        Array(try JSONEncoder().encode(assignment))
    }
}
