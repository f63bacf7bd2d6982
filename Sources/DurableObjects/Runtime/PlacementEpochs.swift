import Synchronization

/// The placement epochs a node was given, per slot of the id space (see <doc:Semantics>, single instance).
///
/// The id space is split into 4096 slots by the first two bytes of the id. A call names the epoch its router
/// knows for the slot; the node serves it only when that is the current epoch, and every flush of an activation
/// is checked against the epoch the activation was made under, so a stale activation's writes never reach disk.
public final class PlacementEpochs: Sendable {
    /// The number of slots.
    public static let slotCount = 4096

    private struct Table {
        var epochs: [UInt16: UInt64] = [:]
        /// Slots handed to another node: they run no object and fire no alarm here until a later assignment.
        var retired: Set<UInt16> = []
    }

    private let table = Mutex(Table())
    private let suspended = Atomic<Bool>(false)

    /// Makes every slot count as retired (a standby, or a primary that was replaced), or serve again as assigned.
    public func setSuspended(_ value: Bool) { suspended.store(value, ordering: .sequentiallyConsistent) }

    /// Whether every slot counts as retired.
    public var isSuspended: Bool { suspended.load(ordering: .sequentiallyConsistent) }

    /// Creates an empty table: every slot at epoch 0 (unassigned).
    public init() {}

    /// The slot of an object id.
    public static func slot(of id: DurableObjectId) -> UInt16 {
        (UInt16(id.bytes[0]) << 8 | UInt16(id.bytes[1])) % UInt16(slotCount)
    }

    /// The current epoch of `slot` (0 when never assigned).
    public func epoch(ofSlot slot: UInt16) -> UInt64 { table.withLock { $0.epochs[slot] ?? 0 } }

    /// The epoch objects of `slot` run and write under here, or `nil` while the slot is retired (being handed to
    /// another node, or handed already).
    public func servingEpoch(ofSlot slot: UInt16) -> UInt64? {
        if isSuspended { return nil }
        return table.withLock { $0.retired.contains(slot) ? nil : $0.epochs[slot] ?? 0 }
    }

    /// The serving epoch of the slot of `id` (`nil` while it is retired).
    public func servingEpoch(of id: DurableObjectId) -> UInt64? { servingEpoch(ofSlot: Self.slot(of: id)) }

    /// Whether `slot` is retired here.
    public func isRetired(_ slot: UInt16) -> Bool { isSuspended || table.withLock { $0.retired.contains(slot) } }

    /// The current epoch of the slot of `id`.
    public func epoch(of id: DurableObjectId) -> UInt64 { epoch(ofSlot: Self.slot(of: id)) }

    /// Records new epochs; an epoch lower than the one recorded is ignored. Returns the slots whose epoch rose.
    @discardableResult
    public func assign(_ assignments: [(slot: UInt16, epoch: UInt64)]) -> Set<UInt16> {
        assign(assignments.map { ($0.slot, $0.epoch, false) }).raised
    }

    /// Records new epochs and whether each slot is retired at it. An assignment at an epoch lower than the one
    /// recorded is ignored; one at the recorded epoch only sets whether the slot is retired (a retire repeated, or
    /// an undone move giving the slot back).
    ///
    /// - Returns: the slots whose epoch rose, the slots now retired that were not, and the slots no longer retired.
    @discardableResult
    public func assign(_ assignments: [(slot: UInt16, epoch: UInt64, retired: Bool)]) -> Changes {
        table.withLock { table in
            var changes = Changes()
            for (slot, epoch, retired) in assignments where epoch >= (table.epochs[slot] ?? 0) {
                if epoch > (table.epochs[slot] ?? 0) {
                    table.epochs[slot] = epoch
                    changes.raised.insert(slot)
                }
                if retired, table.retired.insert(slot).inserted {
                    changes.retired.insert(slot)
                } else if !retired, table.retired.remove(slot) != nil {
                    changes.restored.insert(slot)
                }
            }
            return changes
        }
    }

    /// What one assignment of epochs changed.
    public struct Changes: Sendable, Equatable {
        /// Slots whose epoch rose.
        public var raised: Set<UInt16> = []
        /// Slots retired by it.
        public var retired: Set<UInt16> = []
        /// Slots retired before and serving again.
        public var restored: Set<UInt16> = []
    }

    /// The retired slots.
    public var retiredSlots: Set<UInt16> { table.withLock { $0.retired } }

    /// All assigned slots and their epochs.
    public var assignments: [UInt16: UInt64] { table.withLock { $0.epochs } }
}
