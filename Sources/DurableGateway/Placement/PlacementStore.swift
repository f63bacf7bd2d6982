import DurableObjects

/// A slot's owner: the node and the slot's epoch.
public struct SlotAssignment: Codable, Sendable, Equatable {
    /// The owning node.
    public var nodeID: String
    /// The slot's epoch.
    public var epoch: UInt64
    /// While the slot moves: the node it moves to. `nodeID` was retired at `epoch` and calls to the slot are told
    /// to retry until the move ends.
    public var movingTo: String?
    /// While the slot moves: the session of the gateway that runs the move. Once that gateway is gone, another one
    /// (or the same one started again) undoes the move.
    public var mover: String?

    /// An assignment of a slot to `nodeID` at `epoch`.
    public init(nodeID: String, epoch: UInt64, movingTo: String? = nil, mover: String? = nil) {
        self.nodeID = nodeID
        self.epoch = epoch
        self.movingTo = movingTo
        self.mover = mover
    }
}

/// What registering a node did with its database identity.
public enum IdentityCheck: Sendable, Equatable {
    /// The node id is new here, or came without an identity before: its identity is recorded now.
    case recorded
    /// The node came back with the database it had.
    case matched
    /// The operator said the node replaces a lost one: the identity it had (whose data is gone) was replaced.
    case replaced(lost: String)
    /// The node sent no identity (an older node): nothing was checked.
    case unchecked
}

/// Where the cluster keeps its placement: which node owns each slot and at which epoch, where each node listens,
/// and which database each node id has. The gateway's routing reads it on every call, from memory; writes go to
/// the store's backing (the gateway's RocksDB in ``PlacementTable``, etcd in ``EtcdPlacementStore``).
///
/// A new slot is assigned in two steps: ``owner(of:)`` chooses an owner and reserves it (in memory), and
/// ``record(_:)`` makes the choice durable and returns the owner that won (with several gateways, another one may
/// have assigned the slot first). Nobody hears of a slot before it is recorded.
public protocol PlacementStore: Sendable {
    /// Records where `nodeID` listens and checks that it comes with the database recorded for it.
    ///
    /// - Throws: `FAILED_PRECONDITION` naming both identities when the node came back with another database and
    ///   `replacingLostNode` is not set; nothing is recorded then.
    func register(nodeID: String, address: String, databaseIdentity: String?, replacingLostNode: Bool) async throws
        -> IdentityCheck

    /// The registered nodes and their addresses.
    var nodes: [String: String] { get }

    /// The database identity recorded for `nodeID`, if any.
    func databaseIdentity(of nodeID: String) -> String?

    /// The recorded slots of `nodeID`, with their epochs, in slot order.
    func slots(of nodeID: String) -> [(slot: UInt16, epoch: UInt64)]

    /// The recorded owner of `slot`, if it has one.
    func assignment(of slot: UInt16) -> SlotAssignment?

    /// The owner of `slot`, choosing and reserving one when it has none (`isNew`: the caller must then
    /// ``record(_:)`` it before telling anyone).
    ///
    /// - Throws: `UNAVAILABLE` (retryable) when no node can take the slot.
    func owner(of slot: UInt16) throws -> (assignment: SlotAssignment, isNew: Bool)

    /// Replaces the recorded owner of `slot` with `new` if it is still `expected` (the steps of a slot move);
    /// `false` when the record changed meanwhile (nothing is written then).
    ///
    /// - Throws: the backing's error; nothing is written then.
    func replace(_ slot: UInt16, expected: SlotAssignment, with new: SlotAssignment) async throws -> Bool

    /// Records how many bytes each node stores now (its own estimate, from `Node/Stats`): new slots go to the nodes
    /// with the least stored data and the fewest slots (``NewSlotOwner``).
    func recordStoredBytes(_ bytes: [String: UInt64])

    /// Makes the reservation of `slot` durable; returns the slot's owner as recorded (the reserved one, or the one
    /// another gateway recorded first). A failure drops the reservation.
    @discardableResult
    func record(_ slot: UInt16) async throws -> SlotAssignment
}

/// How a new slot's owner is chosen: the candidate with the lowest sum of its share of the slots and its share of
/// the stored bytes (each relative to the candidates' mean), so that a node that stores more than the others (its
/// objects are bigger or busier) gets fewer new slots, and nodes alike get the same number. Ties go to the lower id.
public enum NewSlotOwner {
    /// The chosen candidate, or `nil` when there is none.
    public static func choose(
        among candidates: some Collection<String>, slots: [String: Int], storedBytes: [String: UInt64]
    ) -> String? {
        guard !candidates.isEmpty else { return nil }
        let count = Double(candidates.count)
        let meanSlots = max(1, Double(candidates.reduce(0) { $0 + (slots[$1] ?? 0) }) / count)
        let meanBytes = Double(candidates.reduce(UInt64(0)) { $0 + (storedBytes[$1] ?? 0) }) / count
        func score(_ node: String) -> Double {
            let slotShare = Double(slots[node] ?? 0) / meanSlots
            guard meanBytes > 0 else { return slotShare }
            return slotShare + Double(storedBytes[node] ?? 0) / meanBytes
        }
        return candidates.map { ($0, score($0)) }.min { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }?.0
    }
}

extension Dictionary where Key == UInt16, Value == SlotAssignment {
    /// The slots of `nodeID` in this slot → owner map, with their epochs, in slot order.
    func slots(of nodeID: String) -> [(slot: UInt16, epoch: UInt64)] {
        filter { $0.value.nodeID == nodeID }.map { ($0.key, $0.value.epoch) }.sorted { $0.slot < $1.slot }
    }
}
