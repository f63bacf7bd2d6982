import DurableObjects
import DurableStorage
import Foundation
import Synchronization

/// Which node owns each slot of the id space, with the slot's epoch, and where each node listens; kept in the
/// gateway's database.
///
/// Slots are assigned lazily: the first call for an object in an unassigned slot gives the slot, at epoch 1, to the
/// node that owns the fewest slots. An assigned slot never moves on its own, so an object is never silently
/// re-created elsewhere: when its node is down, its calls fail (retryably) until the node is back.
public final class PlacementTable: Sendable {
    /// A slot's owner.
    public struct Assignment: Codable, Sendable, Equatable {
        /// The owning node.
        public var nodeID: String
        /// The slot's epoch.
        public var epoch: UInt64
    }

    private struct State: Codable {
        var slots: [UInt16: Assignment] = [:]
        var nodes: [String: String] = [:]
    }

    private static let key = Array("placement/state".utf8)
    private let database: Database
    private let family: ColumnFamily
    private let state: Mutex<State>

    /// Opens the table stored in `database`.
    public init(database: Database) throws {
        self.database = database
        family = try database.ensureColumnFamily(named: "placement")
        if let bytes = try database.get(Self.key, in: family) {
            state = Mutex(try JSONDecoder().decode(State.self, from: Data(bytes)))
        } else {
            state = Mutex(State())
        }
    }

    /// Records where `nodeID` listens (a restarted node may have a new address).
    public func register(nodeID: String, address: String) throws {
        try state.withLock { state in
            state.nodes[nodeID] = address
            try save(state)
        }
    }

    /// The registered nodes and their addresses.
    public var nodes: [String: String] { state.withLock { $0.nodes } }

    /// The slots `nodeID` owns, with their epochs.
    public func slots(of nodeID: String) -> [(slot: UInt16, epoch: UInt64)] {
        state.withLock { state in
            state.slots.filter { $0.value.nodeID == nodeID }.map { ($0.key, $0.value.epoch) }.sorted {
                $0.slot < $1.slot
            }
        }
    }

    /// The owner of `slot`, assigning it now when it has none.
    ///
    /// - Returns: the assignment, and whether it was made by this call (the node must then be told).
    /// - Throws: `UNAVAILABLE` when no node has registered yet.
    public func owner(of slot: UInt16) throws -> (assignment: Assignment, isNew: Bool) {
        try state.withLock { state in
            if let existing = state.slots[slot] { return (existing, false) }
            guard !state.nodes.isEmpty else {
                throw DurableObjectError(.unavailable, "No storage node has joined the cluster yet.", retryable: true)
            }
            var load = Dictionary(uniqueKeysWithValues: state.nodes.keys.map { ($0, 0) })
            for assignment in state.slots.values { load[assignment.nodeID, default: 0] += 1 }
            let node = load.min { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }!.key
            let assignment = Assignment(nodeID: node, epoch: 1)
            state.slots[slot] = assignment
            try save(state)
            return (assignment, true)
        }
    }

    private func save(_ state: State) throws {
        var batch = WriteBatch()
        batch.put(Array(try JSONEncoder().encode(state)), forKey: Self.key, in: family)
        try database.write(batch, sync: true)
    }
}
