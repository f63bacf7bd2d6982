import Synchronization

/// The placement epochs a node was given, per slot of the id space (see <doc:Semantics>, single instance).
///
/// The id space is split into 4096 slots by the first two bytes of the id. A call names the epoch its router
/// knows for the slot; the node serves it only when that is the current epoch, and every flush of an activation
/// is checked against the epoch the activation was made under, so a stale activation's writes never reach disk.
public final class PlacementEpochs: Sendable {
    /// The number of slots.
    public static let slotCount = 4096

    private let epochs = Mutex<[UInt16: UInt64]>([:])

    /// Creates an empty table: every slot at epoch 0 (unassigned).
    public init() {}

    /// The slot of an object id.
    public static func slot(of id: DurableObjectId) -> UInt16 {
        (UInt16(id.bytes[0]) << 8 | UInt16(id.bytes[1])) % UInt16(slotCount)
    }

    /// The current epoch of `slot` (0 when never assigned).
    public func epoch(ofSlot slot: UInt16) -> UInt64 { epochs.withLock { $0[slot] ?? 0 } }

    /// The current epoch of the slot of `id`.
    public func epoch(of id: DurableObjectId) -> UInt64 { epoch(ofSlot: Self.slot(of: id)) }

    /// Records new epochs; an epoch lower than the one recorded is ignored. Returns the slots whose epoch rose.
    @discardableResult
    public func assign(_ assignments: [(slot: UInt16, epoch: UInt64)]) -> Set<UInt16> {
        epochs.withLock { epochs in
            var raised = Set<UInt16>()
            for (slot, epoch) in assignments where epoch > (epochs[slot] ?? 0) {
                epochs[slot] = epoch
                raised.insert(slot)
            }
            return raised
        }
    }

    /// All assigned slots and their epochs.
    public var assignments: [UInt16: UInt64] { epochs.withLock { $0 } }
}
