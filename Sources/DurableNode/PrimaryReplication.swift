import DequeModule
import DurableObjects
import DurableProtocol
import DurableStorage
import DurableWire
import Foundation
import Logging
import SwiftProtobuf
import Synchronization

/// When a primary with a standby acknowledges a write.
public enum ReplicationPolicy: String, Sendable, CaseIterable {
    /// Once both copies are durable (or the control plane recorded that the node runs without its standby).
    case sync
    /// Once the local copy is durable; the standby follows as fast as it can. A failover may lose the writes the
    /// standby had not applied yet.
    case async
}

/// The primary's term is over: its standby took its slots over. It acknowledges no write any more.
public struct ReplicationFenced: Error, CustomStringConvertible {
    /// Why.
    public var reason: String
    /// The error.
    public init(_ reason: String) { self.reason = reason }
    /// The reason.
    public var description: String { reason }
}

/// Where a primary records whether its standby has every acknowledged write (the control plane). A failover may
/// only hand the slots to a standby recorded in step.
public protocol ReplicationControl: Sendable {
    /// Records that the primary acknowledges writes without its standby from now on.
    ///
    /// - Throws: ``ReplicationFenced`` when `term` is no longer the node's term; any other error leaves the record
    ///   as it was (the caller tries again, and writes keep waiting).
    func recordAlone(term: UInt64, standby: String) async throws
    /// Records that `standby` (its database `standbyDatabase`) has every acknowledged write and follows.
    func recordInStep(term: UInt64, standby: String, standbyDatabase: String) async throws
}

/// A control plane of one node: the transitions are logged and kept nowhere else (without etcd there is no
/// failover, so nobody else reads them).
public struct LocalReplicationControl: ReplicationControl {
    let logger: Logger
    /// A control that only logs.
    public init(logger: Logger) { self.logger = logger }
    /// Records nothing (the node's log says it).
    public func recordAlone(term: UInt64, standby: String) async throws {}
    /// Records nothing (the node's log says it).
    public func recordInStep(term: UInt64, standby: String, standbyDatabase: String) async throws {}
}

/// A primary's side of replication: every write of the node's database gets a sequence number, goes to the local
/// disk with it, and is shipped to the standby (`Node/ApplyGroups`) while the local write syncs; with the `sync`
/// policy a write is acknowledged once the standby has it too.
///
/// When the standby is away for longer than ``standbyTimeout`` while writes wait, the control plane records that
/// the node runs alone, that is logged, and the waiting writes are acknowledged; never before. When the standby is
/// back and has caught up (from the groups kept in memory, or from a checkpoint of the whole database), new writes
/// wait for it again, and once it has every earlier one the control plane records it in step.
public final class PrimaryReplication: WriteReplication, Sendable {
    /// The standby a primary ships to.
    public struct Standby: Codable, Sendable, Equatable {
        /// Its node id.
        public var nodeID: String
        /// host:port.
        public var address: String
    }

    /// Whether writes wait for the standby.
    public enum Mode: Sendable, Equatable, CustomStringConvertible {
        /// The standby has every acknowledged write; writes wait for it.
        case inStep
        /// The control plane records that the node acknowledges without its standby.
        case alone
        /// Writes wait for the standby again; once it has every write up to the sequence, it is recorded in step.
        case joining(UInt64)

        /// The mode in words.
        public var description: String {
            switch self {
            case .inStep: "in step"
            case .alone: "alone"
            case .joining(let sequence): "joining at \(sequence)"
            }
        }
    }

    private struct Waiter {
        var sequence: UInt64
        var since: ContinuousClock.Instant
        var completion: @Sendable (Result<Void, any Error>) -> Void
    }

    private struct State {
        var term: UInt64
        var sequence: UInt64
        /// Groups the standby has not confirmed, in order.
        var pending: Deque<Durable_V1_ReplicatedGroup> = []
        var pendingBytes = 0
        /// Groups were dropped from `pending` (too many bytes): the standby needs a checkpoint.
        var overflowed = false
        /// The standby has every group up to this one.
        var acknowledged: UInt64 = 0
        var waiters: Deque<Waiter> = []
        var mode: Mode
        var fenced: String?
        var standby: Standby?
        var standbyDatabase = ""
        var transitionRunning = false
        var wake: CheckedContinuation<Void, Never>?
        var wakeRequested = false
        var sleepGeneration: UInt64 = 0
    }

    /// Where the primary's term and last sequence are kept (written with every group).
    static let positionKey = Array("\(NodeKeyspace.node)replication/position".utf8)
    /// Where the standby's id and address are kept.
    static let standbyKey = Array("\(NodeKeyspace.node)replication/standby".utf8)

    /// The node's id.
    public let nodeID: String
    /// How writes are acknowledged.
    public let policy: ReplicationPolicy
    /// How long writes wait for an absent standby before the node records that it runs alone.
    public let standbyTimeout: Duration
    private let database: Database
    private let meta: ColumnFamily
    private let control: any ReplicationControl
    private let credentials: RPCKey?
    private let tls: RPCClientTLS?
    private let logger: Logger
    private let maximumPendingBytes: Int
    private let onFenced: @Sendable (String) -> Void
    private let state: Mutex<State>
    private let tasks = Mutex<[Task<Void, Never>]>([])

    /// Opens the primary's side for `database` at `term` (the stored term when higher); starts shipping at once when
    /// a standby was attached before.
    public init(
        nodeID: String, database: Database, term: UInt64, policy: ReplicationPolicy = .sync,
        control: any ReplicationControl, credentials: RPCKey?, tls: RPCClientTLS? = nil,
        standbyTimeout: Duration = .seconds(1),
        maximumPendingBytes: Int = 64 << 20, logger: Logger,
        onFenced: @escaping @Sendable (String) -> Void = { _ in }
    ) throws {
        self.nodeID = nodeID
        self.database = database
        self.meta = try database.defaultColumnFamily
        self.policy = policy
        self.control = control
        self.credentials = credentials
        self.tls = tls
        self.standbyTimeout = standbyTimeout
        self.maximumPendingBytes = maximumPendingBytes
        self.logger = logger
        self.onFenced = onFenced
        var storedTerm: UInt64 = 0
        var storedSequence: UInt64 = 0
        if let bytes = try database.get(Self.positionKey, in: meta), bytes.count == 16 {
            storedTerm = Self.decode(bytes[0..<8])
            storedSequence = Self.decode(bytes[8..<16])
        }
        let standby = try database.get(Self.standbyKey, in: meta).flatMap {
            try? JSONDecoder().decode(Standby.self, from: Data($0))
        }
        // A standby may be recorded in step: until it is seen, writes wait for it (or for the record to change).
        state = Mutex(
            State(
                term: max(term, storedTerm), sequence: storedSequence, mode: standby == nil ? .alone : .inStep,
                standby: standby))
        if standby != nil { start() }
    }

    deinit {
        for task in tasks.withLock({ $0 }) { task.cancel() }
    }

    /// Stops shipping.
    public func stop() {
        for task in tasks.withLock({ $0 }) { task.cancel() }
        wakeSender()
    }

    /// The term, the last sequence given, the last one the standby confirmed and the mode.
    public var status: (term: UInt64, sequence: UInt64, acknowledged: UInt64, mode: Mode, fenced: String?) {
        state.withLock { ($0.term, $0.sequence, $0.acknowledged, $0.mode, $0.fenced) }
    }

    /// The standby shipped to, if any.
    public var standby: Standby? { state.withLock { $0.standby } }

    /// Whether the primary was fenced, and why.
    public var fencedReason: String? { state.withLock { $0.fenced } }

    /// Makes `standby` the node's standby (kept on disk); a new standby starts as not in step.
    public func attach(_ standby: Standby) throws {
        let changed = state.withLock { $0.standby != standby }
        guard changed else {
            wakeSender()
            return
        }
        var batch = WriteBatch()
        batch.put(Array(try JSONEncoder().encode(standby)), forKey: Self.standbyKey, in: meta)
        try database.write(batch, sync: true)
        let first = state.withLock { state in
            let first = state.standby == nil
            state.standby = standby
            state.standbyDatabase = ""
            return first
        }
        logger.notice(
            "standby attached", metadata: ["standby": "\(standby.nodeID)", "address": "\(standby.address)"])
        if first { start() } else { wakeSender() }
    }

    private func start() {
        if database.replication == nil { database.replicate(through: self) }
        tasks.withLock { tasks in
            guard tasks.isEmpty else { return }
            tasks.append(Task { await self.ship() })
            tasks.append(Task { await self.watchWaiters() })
        }
    }

    /// Fences the primary: no write is acknowledged or taken any more.
    public func fence(_ reason: String) {
        let (waiters, first) = state.withLock { state -> ([Waiter], Bool) in
            guard state.fenced == nil else { return ([], false) }
            state.fenced = reason
            defer { state.waiters.removeAll() }
            return (Array(state.waiters), true)
        }
        guard first else { return }
        logger.critical("fenced: this node acknowledges no write any more", metadata: ["reason": "\(reason)"])
        for waiter in waiters { waiter.completion(.failure(ReplicationFenced(reason))) }
        onFenced(reason)
        wakeSender()
    }

    // MARK: WriteReplication

    /// Gives the write its sequence, queues it for the standby and returns the position to write with it;
    /// refuses it once fenced.
    public func prepare(_ batches: [WriteBatch]) throws -> ReplicationTicket {
        // The group goes to the standby while it syncs here.
        defer { wakeSender() }
        return try state.withLock { state in
            if let reason = state.fenced {
                throw RPCError(.unavailable, "Node \(nodeID) was replaced by its standby: \(reason)", retryable: true)
            }
            state.sequence += 1
            var group = Durable_V1_ReplicatedGroup()
            group.term = state.term
            group.sequence = state.sequence
            var bytes = 0
            for batch in batches {
                bytes += batch.byteCount
                for operation in batch.operations where !Self.isNodeLocal(operation) {
                    group.writes.append(Self.wire(operation))
                }
            }
            if state.standby != nil {
                state.pending.append(group)
                state.pendingBytes += bytes
                while state.pendingBytes > maximumPendingBytes, let dropped = state.pending.popFirst() {
                    state.pendingBytes -= dropped.writes.reduce(0) { $0 + $1.key.count + $1.value.count }
                    state.overflowed = true
                }
            }
            var local = WriteBatch()
            local.put(Self.encode(state.term) + Self.encode(state.sequence), forKey: Self.positionKey, in: meta)
            return ReplicationTicket(sequence: state.sequence, localWrites: local)
        }
    }

    /// Marks the standby as needing a checkpoint: it may hold a write this database does not.
    public func localWriteFailed(sequence: UInt64, error: any Error) {
        // The standby may get a write this database does not have: only a checkpoint brings them together again.
        logger.error("a local write failed after it was queued for the standby", metadata: ["error": "\(error)"])
        state.withLock { $0.overflowed = true }
    }

    /// Acknowledges the write once the standby has it (or at once with `async`, or while alone).
    public func whenReplicated(
        _ sequence: UInt64, _ completion: @escaping @Sendable (Result<Void, any Error>) -> Void
    ) {
        enum Now {
            case done
            case failed(String)
            case wait
        }
        let now: Now = state.withLock { state in
            if let reason = state.fenced { return .failed(reason) }
            if policy == .async || state.mode == .alone || sequence <= state.acknowledged { return .done }
            state.waiters.append(Waiter(sequence: sequence, since: .now, completion: completion))
            return .wait
        }
        switch now {
        case .done: completion(.success(()))
        case .failed(let reason): completion(.failure(ReplicationFenced(reason)))
        case .wait: wakeSender()
        }
    }

    // MARK: Shipping

    /// Wakes the sender, or makes its next sleep return at once (a wake is never lost).
    private func wakeSender() {
        let sleeper = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if let sleeper = state.wake.take() { return sleeper }
            state.wakeRequested = true
            return nil
        }
        sleeper?.resume()
    }

    /// Ends the sleep numbered `generation` if it still runs (its time is up).
    private func endSleep(_ generation: UInt64) {
        let sleeper = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard state.sleepGeneration == generation else { return nil }
            return state.wake.take()
        }
        sleeper?.resume()
    }

    /// Sleeps until ``wakeSender()`` is called (or was, since the last sleep) or `limit` passed.
    private func sleepUntilWoken(atMost limit: Duration) async {
        let generation = state.withLock { state -> UInt64 in
            state.sleepGeneration += 1
            return state.sleepGeneration
        }
        let timer = Task {
            do {
                try await Task.sleep(for: limit)
            } catch {
                return
            }
            self.endSleep(generation)
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLock { state -> Bool in
                if state.wakeRequested {
                    state.wakeRequested = false
                    return true
                }
                state.wake = continuation
                return false
            }
            if resumeNow { continuation.resume() }
        }
        timer.cancel()
    }

    /// Connects to the standby, catches it up and follows, until stopped or fenced.
    private func ship() async {
        while !Task.isCancelled, fencedReason == nil {
            guard let standby = self.standby, let colon = standby.address.lastIndex(of: ":"),
                let port = Int(standby.address[standby.address.index(after: colon)...])
            else {
                await sleepUntilWoken(atMost: .seconds(1))
                continue
            }
            let host = String(standby.address[..<colon])
            var connection: RPCConnection?
            do {
                let opened = try await RPCConnection.connect(
                    host: host, port: port, connectTimeout: max(standbyTimeout, .seconds(1)), credentials: credentials,
                    tls: tls, logger: logger)
                connection = opened
                try await follow(standby, over: opened)
            } catch let fenced as ReplicationFenced {
                fence(fenced.reason)
            } catch {
                if Task.isCancelled { break }
                logger.debug("standby out of reach", metadata: ["standby": "\(standby.nodeID)", "error": "\(error)"])
                try? await Task.sleep(for: .milliseconds(200))
            }
            await connection?.close()
        }
    }

    private func call<Reply: SwiftProtobuf.Message>(
        _ connection: RPCConnection, _ method: String, _ request: some SwiftProtobuf.Message, timeout: Duration
    ) async throws -> Reply {
        do {
            return try Reply(
                serializedBytes: try await connection.call(
                    method, payload: try request.serializedBytes(), timeout: timeout))
        } catch let error as RPCError where error.code == .failedPrecondition {
            throw ReplicationFenced("the standby refused this primary: \(error.message)")
        }
    }

    private func follow(_ standby: Standby, over connection: RPCConnection) async throws {
        let position: Durable_V1_StandbyPosition = try await call(
            connection, Methods.nodeStandbyStatus, Durable_V1_StandbyStatusRequest(), timeout: standbyTimeout * 2)
        let (term, sequence) = state.withLock { ($0.term, $0.sequence) }
        if position.term > term {
            throw ReplicationFenced("standby \(standby.nodeID) is at term \(position.term), after this node's \(term)")
        }
        let canFollow = state.withLock { state -> Bool in
            let first = state.pending.first?.sequence ?? state.sequence + 1
            return position.primaryNodeID == nodeID && !position.catchingUp && !state.overflowed
                && position.sequence <= state.sequence && position.sequence + 1 >= first
        }
        if canFollow {
            confirm(position.sequence)
        } else {
            logger.notice(
                "standby needs a checkpoint",
                metadata: [
                    "standby": "\(standby.nodeID)", "its-primary": "\(position.primaryNodeID)",
                    "its-sequence": "\(position.sequence)", "sequence": "\(sequence)",
                ])
            try await sendCheckpoint(over: connection)
        }
        state.withLock { $0.standbyDatabase = position.databaseIdentity }
        while !Task.isCancelled, fencedReason == nil, self.standby == standby {
            do {
                try await pipeline(to: standby, over: connection)
            } catch let error as RPCError where error.code == .outOfRange {
                logger.notice("standby lost its place", metadata: ["error": "\(error.message)"])
                try await sendCheckpoint(over: connection)
            }
        }
    }

    /// Requests of groups a primary keeps in flight to its standby at once. One: the groups queued while a
    /// request is out go together in the next, so the standby makes one synced write per round trip. (Four in
    /// flight cut the batches, and each request costs the standby a synced write: durable increments with 32
    /// callers fell from 0.70× to 0.55× of a node alone in `ReplicationBenchmark`, while an open loop's p99 gained
    /// nothing measurable.)
    static let maximumRequestsInFlight = 1

    /// The requests of groups in flight.
    private final class RequestCount: Sendable {
        let value = Atomic<Int>(0)
    }

    /// Sends the queued groups in order, in up to ``maximumRequestsInFlight`` requests at once (the standby applies
    /// them in order), and confirms each reply; returns when the standby changes or the task is cancelled, and
    /// throws the first request's error (the requests after it are cancelled).
    private func pipeline(to standby: Standby, over connection: RPCConnection) async throws {
        let inFlight = RequestCount()
        var shipped = state.withLock { $0.acknowledged }
        try await withThrowingDiscardingTaskGroup { group in
            while !Task.isCancelled, !group.isCancelled, fencedReason == nil, self.standby == standby {
                let batch =
                    inFlight.value.load(ordering: .relaxed) >= Self.maximumRequestsInFlight
                    ? []
                    : state.withLock { state -> [Durable_V1_ReplicatedGroup] in
                        var groups: [Durable_V1_ReplicatedGroup] = []
                        var bytes = 0
                        for group in state.pending where group.sequence > max(shipped, state.acknowledged) {
                            groups.append(group)
                            bytes += group.writes.reduce(0) { $0 + $1.key.count + $1.value.count }
                            if groups.count >= 1_000 || bytes >= 4 << 20 { break }
                        }
                        return groups
                    }
                guard let last = batch.last else {
                    await considerJoining()
                    await sleepUntilWoken(atMost: .seconds(1))
                    continue
                }
                shipped = last.sequence
                let request = Durable_V1_ApplyGroupsRequest.with {
                    $0.primaryNodeID = nodeID
                    $0.groups = batch
                }
                inFlight.value.add(1, ordering: .relaxed)
                group.addTask {
                    defer {
                        inFlight.value.subtract(1, ordering: .relaxed)
                        self.wakeSender()
                    }
                    let reply: Durable_V1_StandbyPosition = try await self.call(
                        connection, Methods.nodeApplyGroups, request, timeout: self.standbyTimeout * 2)
                    self.state.withLock { $0.standbyDatabase = reply.databaseIdentity }
                    self.confirm(reply.sequence)
                    await self.considerJoining()
                }
            }
        }
    }

    /// The standby has every group up to `sequence`: drops them and acknowledges the writes that waited for them.
    private func confirm(_ sequence: UInt64) {
        let done = state.withLock { state -> [Waiter] in
            state.acknowledged = max(state.acknowledged, sequence)
            while let first = state.pending.first, first.sequence <= state.acknowledged {
                state.pending.removeFirst()
                state.pendingBytes -= first.writes.reduce(0) { $0 + $1.key.count + $1.value.count }
            }
            var done: [Waiter] = []
            while let first = state.waiters.first, first.sequence <= state.acknowledged {
                done.append(state.waiters.removeFirst())
            }
            return done
        }
        for waiter in done { waiter.completion(.success(())) }
    }

    /// Sends every row of the database as of now, then the sequence it holds.
    private func sendCheckpoint(over connection: RPCConnection) async throws {
        let started = ContinuousClock.now
        let (snapshot, term, sequence) = try database.betweenWrites {
            try state.withLock { state in
                state.pending.removeAll()
                state.pendingBytes = 0
                state.overflowed = false
                return (try database.snapshot(), state.term, state.sequence)
            }
        }
        defer { snapshot.release() }
        var rows = 0
        var first = true
        for familyName in database.columnFamilyNames {
            let family = try database.columnFamily(named: familyName)
            var after: [UInt8]?
            while true {
                let lower = after.map { $0 + [0] }
                let chunk = try await Self.offPool { [database] in
                    var options = ScanOptions(snapshot: snapshot)
                    options.lowerBound = lower
                    options.limit = 2_000
                    return try database.scan(in: family, options)
                }
                guard !chunk.isEmpty else { break }
                after = chunk.last!.key
                let writes = chunk.filter { familyName != "default" || !Self.isNodeLocal($0.key) }.map { row in
                    Durable_V1_ReplicatedWrite.with {
                        $0.kind = .put
                        $0.family = familyName
                        $0.key = Data(row.key)
                        $0.value = Data(row.value)
                    }
                }
                rows += writes.count
                let part = Durable_V1_CheckpointPart.with {
                    $0.first = first
                    $0.writes = writes
                }
                first = false
                let _: Durable_V1_StandbyPosition = try await call(
                    connection, Methods.nodeApplyGroups,
                    Durable_V1_ApplyGroupsRequest.with {
                        $0.primaryNodeID = nodeID
                        $0.checkpoint = part
                    }, timeout: .seconds(30))
                if chunk.count < 2_000 { break }
            }
        }
        let reply: Durable_V1_StandbyPosition = try await call(
            connection, Methods.nodeApplyGroups,
            Durable_V1_ApplyGroupsRequest.with {
                $0.primaryNodeID = nodeID
                $0.checkpoint = .with {
                    $0.first = first
                    $0.last = true
                    $0.term = term
                    $0.sequence = sequence
                }
            }, timeout: .seconds(30))
        logger.notice(
            "standby caught up from a checkpoint",
            metadata: [
                "rows": "\(rows)", "sequence": "\(sequence)", "seconds": "\(ContinuousClock.now - started)",
            ])
        state.withLock { state in
            state.acknowledged = sequence
            state.standbyDatabase = reply.databaseIdentity
        }
        confirm(reply.sequence)
    }

    /// Whether `operation` writes a row of this database alone (see ``isNodeLocal(_:)-swift.type.method``).
    static func isNodeLocal(_ operation: WriteBatch.Operation) -> Bool {
        switch operation {
        case .put(let family, let key, _), .delete(let family, let key):
            family.name == "default" && isNodeLocal(key)
        case .deleteRange: false
        }
    }

    /// Rows of the default column family that belong to this database alone (its identity, its replication state).
    static func isNodeLocal(_ key: [UInt8]) -> Bool {
        key == NodeMetadata.databaseIdentityKey || key.starts(with: Array("\(NodeKeyspace.node)replication/".utf8))
            || key.starts(with: Array("\(NodeKeyspace.node)standby/".utf8))
    }

    // MARK: Transitions

    /// Writes waited longer than the timeout for the standby: record that the node runs alone.
    private func watchWaiters() async {
        while !Task.isCancelled, fencedReason == nil {
            try? await Task.sleep(for: .milliseconds(100))
            let stale = state.withLock { state -> Bool in
                guard state.mode != .alone, !state.transitionRunning, let oldest = state.waiters.first else {
                    return false
                }
                guard ContinuousClock.now - oldest.since >= standbyTimeout else { return false }
                state.transitionRunning = true
                return true
            }
            guard stale else { continue }
            await goAlone()
        }
    }

    private func goAlone() async {
        defer { state.withLock { $0.transitionRunning = false } }
        let (term, standby) = state.withLock { ($0.term, $0.standby?.nodeID ?? "") }
        do {
            try await control.recordAlone(term: term, standby: standby)
        } catch let fenced as ReplicationFenced {
            fence(fenced.reason)
            return
        } catch {
            logger.error(
                "could not record that this node runs without its standby; writes keep waiting",
                metadata: ["error": "\(error)"])
            return
        }
        let released = state.withLock { state -> [Waiter] in
            state.mode = .alone
            defer { state.waiters.removeAll() }
            return Array(state.waiters)
        }
        logger.notice(
            "running without standby: writes are acknowledged on this node alone",
            metadata: ["standby": "\(standby)", "term": "\(term)", "released-writes": "\(released.count)"])
        for waiter in released { waiter.completion(.success(())) }
    }

    /// The standby has caught up while the node ran alone: writes wait for it again, and once it has every earlier
    /// write the control plane records it in step.
    private func considerJoining() async {
        let start = state.withLock { state -> (UInt64, UInt64, String, String)? in
            guard state.fenced == nil, !state.transitionRunning, let standby = state.standby else { return nil }
            switch state.mode {
            case .inStep:
                return nil
            case .alone:
                // The standby follows again: from now on writes wait for it.
                state.mode = .joining(state.sequence)
                return nil
            case .joining(let sequence):
                guard state.acknowledged >= sequence else { return nil }
                state.transitionRunning = true
                return (state.term, sequence, standby.nodeID, state.standbyDatabase)
            }
        }
        guard let (term, _, standby, standbyDatabase) = start else { return }
        defer { state.withLock { $0.transitionRunning = false } }
        do {
            try await control.recordInStep(term: term, standby: standby, standbyDatabase: standbyDatabase)
        } catch let fenced as ReplicationFenced {
            fence(fenced.reason)
            return
        } catch {
            logger.warning("could not record the standby in step", metadata: ["error": "\(error)"])
            return
        }
        state.withLock { state in
            if case .joining = state.mode { state.mode = .inStep }
        }
        logger.notice("standby in step: writes wait for both copies", metadata: ["standby": "\(standby)"])
    }

    // MARK: Encoding

    static func wire(_ operation: WriteBatch.Operation) -> Durable_V1_ReplicatedWrite {
        switch operation {
        case .put(let family, let key, let value):
            .with {
                $0.kind = .put
                $0.family = family.name
                $0.key = Data(key)
                $0.value = Data(value)
            }
        case .delete(let family, let key):
            .with {
                $0.kind = .delete
                $0.family = family.name
                $0.key = Data(key)
            }
        case .deleteRange(let family, let start, let end):
            .with {
                $0.kind = .deleteRange
                $0.family = family.name
                $0.key = Data(start)
                $0.end = Data(end)
            }
        }
    }

    static func encode(_ value: UInt64) -> [UInt8] {
        (0..<8).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * UInt64($0))) }
    }

    static func decode(_ bytes: ArraySlice<UInt8>) -> UInt64 {
        bytes.reduce(0) { $0 << 8 | UInt64($1) }
    }

    static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }
}
