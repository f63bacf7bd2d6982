import DurableEtcd
import DurableObjects
import Foundation

/// A gateway's copy of the placement kept in etcd (see ``EtcdPlacementStore`` for the keys), built from etcd's keys
/// and changes, with the slots this gateway reserved but has not recorded yet, and each node's load.
struct EtcdPlacementView: Sendable {
    /// The cluster's key prefix, `/durable/<cluster>/`.
    let prefix: String
    private(set) var slots: [UInt16: SlotAssignment] = [:]
    /// The etcd modification revision of each slot's record, as last seen (what a move's compare-and-set checks).
    private(set) var slotRevisions: [UInt16: Int64] = [:]
    private(set) var reserved: [UInt16: SlotAssignment] = [:]
    private(set) var nodes: [String: String] = [:]
    private(set) var identities: [String: String] = [:]
    /// The nodes with a live member key.
    private(set) var live: Set<String> = []
    /// The live gateways (a key under their lease): session → RPC address.
    private(set) var gateways: [String: String] = [:]
    /// Slots per node, recorded and reserved.
    private var load: [String: Int] = [:]
    /// Bytes each node stores, as it last said.
    var storedBytes: [String: UInt64] = [:]

    init(prefix: String) {
        self.prefix = prefix
    }

    /// The owner of `slot`, or a new reservation for the live node chosen by ``NewSlotOwner`` (`isNew`).
    ///
    /// - Throws: `UNAVAILABLE` (retryable) when no node is alive.
    mutating func owner(of slot: UInt16) throws -> (assignment: SlotAssignment, isNew: Bool) {
        if let existing = slots[slot] ?? reserved[slot] { return (existing, false) }
        guard let node = NewSlotOwner.choose(among: live, slots: load, storedBytes: storedBytes) else {
            throw DurableObjectError(
                .unavailable, "No live storage node is in the cluster to take a new slot.", retryable: true)
        }
        let assignment = SlotAssignment(nodeID: node, epoch: 1)
        reserved[slot] = assignment
        load[node, default: 0] += 1
        return (assignment, true)
    }

    /// Drops the reservation of `slot`, if any.
    mutating func release(_ slot: UInt16) {
        if let dropped = reserved.removeValue(forKey: slot) { load[dropped.nodeID, default: 1] -= 1 }
    }

    /// Takes over the reservations of `other` (a view being replaced by a fresh read).
    mutating func keepReservations(of other: EtcdPlacementView) {
        for (slot, assignment) in other.reserved where slots[slot] == nil {
            reserved[slot] = assignment
            load[assignment.nodeID, default: 0] += 1
        }
    }

    /// Applies one key as etcd has it now (`deleted`: the key was deleted).
    mutating func apply(_ value: KeyValue, deleted: Bool) {
        let name = String(decoding: value.key, as: UTF8.self)
        guard name.hasPrefix(prefix) else { return }
        let parts = name.dropFirst(prefix.count).split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2 else { return }
        if parts[0] == "slots" {
            guard let slot = UInt16(parts[1], radix: 16) else { return }
            if deleted {
                if let old = slots.removeValue(forKey: slot) { load[old.nodeID, default: 1] -= 1 }
                slotRevisions[slot] = nil
            } else if let assignment = try? JSONDecoder().decode(SlotAssignment.self, from: Data(value.value)) {
                apply(slot: slot, assignment, revision: value.modRevision)
            }
            return
        }
        if deleted {
            switch parts[0] {
            case "members": live.remove(parts[1])
            case "nodes": nodes[parts[1]] = nil
            case "identities": identities[parts[1]] = nil
            case "gateways": gateways[parts[1]] = nil
            default: break
            }
        } else {
            apply(category: parts[0], name: parts[1], value: value.value)
        }
    }

    /// Applies the value of a node's key (`members`: alive, `nodes`: its address, or `identities`) or a gateway's
    /// (`gateways`: alive, at its RPC address).
    mutating func apply(category: String, name: String, value: [UInt8]) {
        let text = String(decoding: value, as: UTF8.self)
        switch category {
        case "members":
            live.insert(name)
            if load[name] == nil { load[name] = 0 }
        case "nodes":
            nodes[name] = text
            if load[name] == nil { load[name] = 0 }
        case "identities": identities[name] = text
        case "gateways": gateways[name] = text
        default: break
        }
    }

    /// Applies a slot's recorded owner, written at etcd revision `revision` (an older one than known is ignored).
    mutating func apply(slot: UInt16, _ assignment: SlotAssignment, revision: Int64) {
        if let known = slotRevisions[slot], known > revision { return }
        slotRevisions[slot] = revision
        if let old = slots[slot] {
            guard old != assignment else { return }
            load[old.nodeID, default: 1] -= 1
        }
        slots[slot] = assignment
        load[assignment.nodeID, default: 0] += 1
    }
}
