import DurableObjects
import DurableProtocol
import DurableStorage
import DurableWire
import Foundation
import Synchronization

/// A standby's copy of its primary's writes: applies the primary's write groups in order (`Node/ApplyGroups`), each
/// request's groups in one synced write together with the standby's new position, so that after a crash the
/// standby holds exactly the groups up to its recorded position.
///
/// It refuses a group of another primary, of an older term than its own (a primary that was failed over must not
/// write here any more), and a gap in the sequence; a group it applied already is skipped.
final class StandbyReplica: Sendable {
    /// The primary this standby follows.
    let primary: String
    private let database: Database
    private let position: Mutex<Durable_V1_StandbyPosition>
    /// One request applies at a time, and in the order of its groups (see ``takeTurn(firstSequence:)``).
    private let turn = Mutex(Turn())

    private struct Turn {
        var busy = false
        var waiters: [CheckedContinuation<Bool, Never>] = []
    }

    /// How long a request whose first group does not follow the last one applied waits for the requests before it.
    static let orderWait: Duration = .seconds(2)

    /// Where the position is kept, in the node's metadata.
    static let positionKey = Array("\(NodeKeyspace.node)standby/position".utf8)

    /// The term this node took over at, once it did: it applies no group any more.
    private let promotedTerm = Mutex<UInt64?>(nil)

    /// Opens the standby's copy in `database`, which follows `primary`.
    ///
    /// - Parameters:
    ///   - databaseIdentity: the identity of `database`, which the position reports.
    ///   - rejoining: the node was a primary that was replaced: its data is a diverged copy, which the next
    ///     checkpoint of the new primary replaces; the position is reset to none.
    /// - Throws: `FAILED_PRECONDITION` when the database follows another primary already.
    init(database: Database, primary: String, databaseIdentity: String = "", rejoining: Bool = false) throws {
        self.database = database
        self.primary = primary
        var stored = Durable_V1_StandbyPosition.with { $0.primaryNodeID = primary }
        let meta = try database.defaultColumnFamily
        let existing = try database.get(Self.positionKey, in: meta).map {
            try Durable_V1_StandbyPosition(serializedBytes: $0)
        }
        let wasPrimary = try database.get(PrimaryReplication.positionKey, in: meta) != nil
        if rejoining && (wasPrimary || (existing.map { $0.primaryNodeID != primary } ?? true)) {
            // A diverged copy: it takes a checkpoint before any group.
            stored.catchingUp = true
            var batch = WriteBatch()
            batch.put(try stored.serializedBytes(), forKey: Self.positionKey, in: try database.defaultColumnFamily)
            batch.delete(PrimaryReplication.positionKey, in: try database.defaultColumnFamily)
            batch.delete(PrimaryReplication.standbyKey, in: try database.defaultColumnFamily)
            try database.write(batch, sync: true)
        } else if let bytes = try database.get(Self.positionKey, in: try database.defaultColumnFamily) {
            stored = try Durable_V1_StandbyPosition(serializedBytes: bytes)
            guard stored.primaryNodeID == primary else {
                throw RPCError(
                    .failedPrecondition,
                    "This database follows primary '\(stored.primaryNodeID)', not '\(primary)': a standby's data "
                        + "is its primary's copy; give it an empty folder to follow another.")
            }
        }
        stored.databaseIdentity = databaseIdentity
        position = Mutex(stored)
    }

    /// The primary, the newest term accepted and the last group applied.
    var current: Durable_V1_StandbyPosition { position.withLock { $0 } }

    /// Waits until no other request applies and, for a request of groups starting at `firstSequence`, until the
    /// group before it is applied: a primary keeps several requests in flight on one connection, and they may be
    /// handled here in another order than it sent them. After ``orderWait`` the request goes on anyway (and is
    /// refused if its groups still do not follow).
    private func takeTurn(firstSequence: UInt64?) async {
        let deadline = ContinuousClock.now + Self.orderWait
        var timer: Task<Void, Never>?
        defer { timer?.cancel() }
        while true {
            let admitted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let now = turn.withLock { turn -> Bool in
                    let follows = firstSequence.map { $0 <= position.withLock { $0.sequence } + 1 } ?? true
                    guard !turn.busy, follows || ContinuousClock.now >= deadline else {
                        turn.waiters.append(continuation)
                        return false
                    }
                    turn.busy = true
                    return true
                }
                if now {
                    continuation.resume(returning: true)
                } else if timer == nil, firstSequence != nil {
                    // Waiting for an earlier request: look again at the deadline even if nothing ends before it.
                    timer = Task { [weak self] in
                        try? await Task.sleep(until: deadline)
                        self?.wakeWaiters()
                    }
                }
            }
            if admitted { return }
        }
    }

    /// Ends a request's turn: the waiting requests look again.
    private func endTurn() {
        turn.withLock { $0.busy = false }
        wakeWaiters()
    }

    private func wakeWaiters() {
        let waiters = turn.withLock { turn in
            defer { turn.waiters = [] }
            return turn.waiters
        }
        for waiter in waiters { waiter.resume(returning: false) }
    }

    /// Takes over from the primary at `term`: the term is kept with the position, and no group is applied any more
    /// (the old primary's are refused), so that every write the old primary could still acknowledge is here.
    func promote(toTerm term: UInt64) async throws {
        await takeTurn(firstSequence: nil)
        defer { endTurn() }
        var next = current
        next.term = max(next.term, term)
        var batch = WriteBatch()
        batch.put(try next.serializedBytes(), forKey: Self.positionKey, in: try database.defaultColumnFamily)
        try await database.writeSynced(batch)
        position.withLock { $0 = next }
        promotedTerm.withLock { $0 = term }
    }

    /// Applies a part of a checkpoint: the first part deletes every row this copy holds; the last sets the
    /// position.
    private func applyCheckpoint(_ part: Durable_V1_CheckpointPart) async throws -> Durable_V1_StandbyPosition {
        var next = current
        let meta = try database.defaultColumnFamily
        if part.first {
            next.catchingUp = true
            next.sequence = 0
            var marker = WriteBatch()
            marker.put(try next.serializedBytes(), forKey: Self.positionKey, in: meta)
            try await database.writeSynced(marker)
            position.withLock { $0 = next }
            try await PrimaryReplication.offPool { [database] in
                for name in database.columnFamilyNames {
                    let family = try database.columnFamily(named: name)
                    var batch = WriteBatch()
                    try database.forEach(in: family) { key, _ in
                        if name != "default" || !PrimaryReplication.isNodeLocal(key) { batch.delete(key, in: family) }
                        if batch.count >= 2_000 {
                            try database.write(batch, sync: false)
                            batch = WriteBatch()
                        }
                        return true
                    }
                    if !batch.isEmpty { try database.write(batch, sync: false) }
                }
            }
        }
        var batch = WriteBatch()
        var families: [String: ColumnFamily] = [:]
        for write in part.writes {
            let family = try families[write.family] ?? database.ensureColumnFamily(named: write.family)
            families[write.family] = family
            if write.family == "default" && PrimaryReplication.isNodeLocal(Array(write.key)) { continue }
            batch.put(Array(write.value), forKey: Array(write.key), in: family)
        }
        if part.last {
            next.catchingUp = false
            next.term = max(next.term, part.term)
            next.sequence = part.sequence
            batch.put(try next.serializedBytes(), forKey: Self.positionKey, in: meta)
        }
        try await database.writeSynced(batch)
        position.withLock { $0 = next }
        return next
    }

    /// Applies `request`'s groups that are new; returns the position after them.
    ///
    /// - Throws: `FAILED_PRECONDITION` for another primary or an older term, `OUT_OF_RANGE` for a gap (nothing of
    ///   the request is applied then), `ABORTED` (retryable) while another request is being applied, or the
    ///   storage error of the write.
    func apply(_ request: Durable_V1_ApplyGroupsRequest) async throws -> Durable_V1_StandbyPosition {
        guard request.primaryNodeID == primary else {
            throw RPCError(
                .failedPrecondition,
                "This node is the standby of '\(primary)', not of '\(request.primaryNodeID)'.")
        }
        await takeTurn(firstSequence: request.hasCheckpoint ? nil : request.groups.first?.sequence)
        defer { endTurn() }
        if let term = promotedTerm.withLock({ $0 }) {
            throw RPCError(
                .failedPrecondition,
                "Node took over from '\(primary)' at term \(term): it applies no group of its former primary.")
        }
        if request.hasCheckpoint { return try await applyCheckpoint(request.checkpoint) }
        guard !current.catchingUp else {
            throw RPCError(
                .outOfRange, "This standby holds no complete copy yet: it takes a checkpoint before any group.")
        }

        var next = current
        var batch = WriteBatch()
        var families: [String: ColumnFamily] = [:]
        for group in request.groups {
            guard group.term >= next.term else {
                throw RPCError(
                    .failedPrecondition,
                    "Group \(group.sequence) is of term \(group.term), older than this standby's term \(next.term): "
                        + "its primary was replaced.")
            }
            if group.sequence <= next.sequence {
                guard group.term == next.term else {
                    throw RPCError(
                        .failedPrecondition,
                        "Group \(group.sequence) of term \(group.term) comes after group \(next.sequence) of term "
                            + "\(next.term) was applied: a new term continues the sequence.")
                }
                continue  // applied already (a group sent again after a lost reply)
            }
            guard group.sequence == next.sequence + 1 else {
                throw RPCError(
                    .outOfRange,
                    "Group \(group.sequence) does not follow group \(next.sequence), the last one applied: the "
                        + "standby must catch up first.")
            }
            for write in group.writes
            where !(write.family == "default" && PrimaryReplication.isNodeLocal(Array(write.key))) {
                let family: ColumnFamily
                if let known = families[write.family] {
                    family = known
                } else {
                    guard !write.family.isEmpty else {
                        throw RPCError(.invalidArgument, "A replicated write names no column family.")
                    }
                    family = try database.ensureColumnFamily(named: write.family)
                    families[write.family] = family
                }
                switch write.kind {
                case .put: batch.put(Array(write.value), forKey: Array(write.key), in: family)
                case .delete: batch.delete(Array(write.key), in: family)
                case .deleteRange: batch.deleteRange(from: Array(write.key), to: Array(write.end), in: family)
                case .UNRECOGNIZED(let kind):
                    throw RPCError(.invalidArgument, "Unknown kind of replicated write: \(kind).")
                }
            }
            next.term = group.term
            next.sequence = group.sequence
        }
        guard next != current else { return next }
        batch.put(try next.serializedBytes(), forKey: Self.positionKey, in: try database.defaultColumnFamily)
        try await database.writeSynced(batch)
        position.withLock { $0 = next }
        return next
    }
}

extension ObjectService {
    /// The standby's copy, or `FAILED_PRECONDITION` for a node that is no standby.
    func standbyReplica() throws -> StandbyReplica {
        guard let standby else {
            throw RPCError(
                .failedPrecondition,
                "Node \(nodeID) is not a standby: start it with --standby-for PRIMARY to have it apply a primary's writes."
            )
        }
        return standby
    }
}
