import DequeModule
import DurableStorage
import Synchronization

/// What the runtime lends an object's storage engine.
struct StorageHooks: Sendable {
    /// Run by the group committer just before a flush is written; throwing refuses the flush (used to fence stale
    /// activations and to inject write failures in tests).
    var writeCheck: GroupCommitter.Check?
    /// Run before every read that goes to RocksDB (tests use it to hold a read in progress).
    var beforeDatabaseRead: (@Sendable () -> Void)?
    /// Called (off any lock) when a flush failed and the object must be reset.
    var flushFailed: @Sendable (any Error) -> Void
    /// Entries of clean values kept in memory for this object.
    var cacheCapacity: Int
    /// The namespace whose alarm records hold the object's alarm (the record's key is made when it is used, so that a
    /// resident object does not hold it).
    var alarmNamespaceID: String
    /// Whether the object's class handles alarms (others may not set one).
    var handlesAlarms: Bool
    /// Called (off any lock) after a flush that set (milliseconds since the epoch) or removed (`nil`) the alarm.
    var alarmChanged: @Sendable (Int64?) -> Void
    /// Where the object's reads and writes are counted.
    var metrics: StorageMetrics = .disabled
    /// The name to record with the object's first flush (``ObjectNames``), when one is to be recorded, so that an
    /// object that never writes leaves nothing on disk. The row itself is made at that flush.
    var firstFlushName: (namespaceID: String, name: String)? = nil
}

/// One entry of an overlay: a value written, or a deletion.
enum OverlaySlot: Sendable, Equatable {
    case value([UInt8])
    case deleted

    var value: [UInt8]? {
        if case .value(let bytes) = self { return bytes }
        return nil
    }
}

/// A change of the object's alarm not yet on disk.
enum AlarmWrite: Sendable, Equatable {
    /// Set for this time, in milliseconds since the Unix epoch.
    case set(Int64)
    case deleted

    var milliseconds: Int64? {
        if case .set(let milliseconds) = self { return milliseconds }
        return nil
    }
}

/// Writes not yet on disk: the user's keys (by their raw UTF-8 bytes) and, apart from them, the alarm.
struct OverlayLayer: Sendable {
    var entries: [[UInt8]: OverlaySlot] = [:]
    /// The alarm set or deleted in this layer (`nil`: untouched).
    var alarm: AlarmWrite?
    /// A `deleteAll()` happened: nothing below this layer counts (the alarm included).
    var clearsBelow = false
    /// The sequence number of the newest write in the layer.
    var maxSequence: UInt64 = 0

    var isEmpty: Bool { entries.isEmpty && alarm == nil && !clearsBelow }
}

/// The storage of one activation: the read-your-writes overlay, the clean-value cache, flush scheduling (one
/// atomic batch per flush, at most one in flight) and the output gate (waiting until writes are durable).
///
/// Reads and writes are synchronous: called on the object's executor they never suspend, which is what keeps the
/// input gate closed during a read. All state sits behind one lock, because flush completions arrive on the
/// commit thread and output-gate waits come from other tasks.
final class StorageEngine: Sendable {
    let database: Database
    let family: ColumnFamily
    let objectID: [UInt8]
    let committer: GroupCommitter
    let hooks: StorageHooks

    private struct Waiter {
        var target: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var dirty = OverlayLayer()
        var flushing: OverlayLayer?
        var transaction: OverlayLayer?
        var cache: [[UInt8]: OverlaySlot] = [:]
        var cacheOrder = Deque<[UInt8]>()
        /// The alarm as it is on disk, once read or written (`nil`: unknown).
        var cachedAlarm: AlarmWrite?
        /// The last sequence number given to a write.
        var writeSequence: UInt64 = 0
        /// The newest write that outgoing messages must wait for (writes with `allowUnconfirmed` do not count).
        var gateSequence: UInt64 = 0
        /// Every write up to this sequence number is on disk.
        var durableSequence: UInt64 = 0
        /// Bumped by every write and flush, so that a read that raced with them does not fill the cache.
        var generation: UInt64 = 0
        var turnActive = false
        var failure: DurableObjectError?
        var waiters: [Waiter] = []
        /// Whether ``StorageHooks/firstFlushName`` still waits for a flush.
        var firstFlushRecordPending = true
        /// Who waits for the flush in flight to be resolved (written or refused) after the engine was stopped.
        var settleWaiters: [CheckedContinuation<Void, Never>] = []
        /// An alarm handler is running: `getAlarm()` answers `nil` unless the alarm is set again meanwhile.
        var alarmRunning = false
        /// The alarm was set, deleted or cleared while the handler ran.
        var alarmTouchedWhileRunning = false
        /// The open transaction set or deleted the alarm (it counts as touched only if the transaction commits).
        var alarmTouchedInTransaction = false
    }

    private let state = Mutex(State())

    init(database: Database, family: ColumnFamily, objectID: [UInt8], committer: GroupCommitter, hooks: StorageHooks) {
        self.database = database
        self.family = family
        self.objectID = objectID
        self.committer = committer
        self.hooks = hooks
    }

    // MARK: Reads

    /// The first half of a read, done when the read is issued: the overlays and the cache. `nil` means the value
    /// must come from RocksDB; `generation` then tells whether the cache may keep what is read.
    func lookup(_ key: [UInt8], inTransaction: Bool) throws -> (slot: OverlaySlot?, generation: UInt64) {
        try state.withLock { state throws -> (slot: OverlaySlot?, generation: UInt64) in
            if let failure = state.failure { throw failure }
            for layer in Self.layers(state, inTransaction: inTransaction) {
                if let slot = layer.entries[key] { return (slot, 0) }
                if layer.clearsBelow { return (.deleted, 0) }
            }
            if let cached = state.cache[key] { return (cached, 0) }
            return (nil, state.generation)
        }
    }

    /// The second half of a read: RocksDB, as of `snapshot` when given. Keeps the value in the cache unless a
    /// write or flush happened since `generation` was read.
    func databaseGet(_ key: [UInt8], snapshot: Snapshot?, generation: UInt64, noCache: Bool) throws -> [UInt8]? {
        hooks.beforeDatabaseRead?()
        let value: [UInt8]?
        do {
            value = try database.get(
                ObjectKeySpace.storageKey(objectID: objectID, userKeyBytes: key), in: family, snapshot: snapshot)
        } catch {
            throw DurableObjectError(.internal, "Durable Object storage read failed: \(error)")
        }
        if !noCache {
            state.withLock { state in
                if state.generation == generation {
                    Self.remember(&state, key, value.map(OverlaySlot.value) ?? .deleted, capacity: hooks.cacheCapacity)
                }
            }
        }
        return value
    }

    /// A read in one go (overlays, cache, then RocksDB).
    func read(_ key: [UInt8], inTransaction: Bool, noCache: Bool) throws -> [UInt8]? {
        let found = try lookup(key, inTransaction: inTransaction)
        if let slot = found.slot { return slot.value }
        return try databaseGet(key, snapshot: nil, generation: found.generation, noCache: noCache)
    }

    /// A consistent point to finish reads later from (for reads that let other events in meanwhile).
    func snapshot() throws -> Snapshot {
        do {
            return try database.snapshot()
        } catch {
            throw DurableObjectError(.internal, "Durable Object storage read failed: \(error)")
        }
    }

    /// The writes not yet on disk that a list must merge, taken when the list is issued; `skipDatabase` when a
    /// `deleteAll()` among them hides everything on disk.
    func overlayForList(inTransaction: Bool) throws -> (overlay: [[UInt8]: OverlaySlot], skipDatabase: Bool) {
        try state.withLock { state throws -> ([[UInt8]: OverlaySlot], Bool) in
            if let failure = state.failure { throw failure }
            var merged: [[UInt8]: OverlaySlot] = [:]
            var skip = false
            for layer in Self.layers(state, inTransaction: inTransaction).reversed() {
                if layer.clearsBelow {
                    merged.removeAll()
                    skip = true
                }
                merged.merge(layer.entries) { _, newer in newer }
            }
            return (merged, skip)
        }
    }

    /// The entries in `[lower, upper)` that begin with `prefix`, merged from RocksDB (as of `snapshot`) and
    /// `overlay`, in byte order (or reversed), cut at `limit`.
    func list(
        overlay: [[UInt8]: OverlaySlot], skipDatabase: Bool, snapshot: Snapshot?,
        lower: [UInt8]?, upper: [UInt8]?, prefix: [UInt8]?, reverse: Bool, limit: Int?
    ) throws -> [(key: [UInt8], value: [UInt8])] {
        func inRange(_ key: [UInt8]) -> Bool {
            if let lower, key.lexicographicallyPrecedes(lower) { return false }
            if let upper, !key.lexicographicallyPrecedes(upper) { return false }
            if let prefix, !key.starts(with: prefix) { return false }
            return true
        }
        let before: ([UInt8], [UInt8]) -> Bool =
            reverse ? { $1.lexicographicallyPrecedes($0) } : { $0.lexicographicallyPrecedes($1) }
        let pending = overlay.filter { inRange($0.key) }
            .sorted { before($0.key, $1.key) }
        var result: [(key: [UInt8], value: [UInt8])] = []
        var next = 0
        let full = { limit.map { result.count >= $0 } ?? false }
        func emit(_ key: [UInt8], _ slot: OverlaySlot) {
            if case .value(let value) = slot { result.append((key, value)) }
        }

        if !skipDatabase {
            hooks.beforeDatabaseRead?()
            let options = ObjectKeySpace.scanOptions(
                objectID: objectID, start: lower, end: upper, prefix: prefix, reverse: reverse, snapshot: snapshot)
            do {
                try database.forEach(in: family, options) { storageKey, value in
                    let key = Array(ObjectKeySpace.userKeyBytes(ofStorageKey: storageKey))
                    while next < pending.count, before(pending[next].key, key) {
                        emit(pending[next].key, pending[next].value)
                        next += 1
                        if full() { return false }
                    }
                    if next < pending.count, pending[next].key == key {
                        emit(key, pending[next].value)
                        next += 1
                    } else {
                        result.append((key, value))
                    }
                    return !full()
                }
            } catch {
                throw DurableObjectError(.internal, "Durable Object storage read failed: \(error)")
            }
        }
        while next < pending.count, !full() {
            emit(pending[next].key, pending[next].value)
            next += 1
        }
        return result
    }

    // MARK: Writes

    /// Records writes in the overlay (the transaction's, when `inTransaction`). Returns at once.
    func write(_ writes: [([UInt8], OverlaySlot)], unconfirmed: Bool, inTransaction: Bool) throws {
        try record(unconfirmed: unconfirmed, inTransaction: inTransaction) { layer in
            for (key, slot) in writes { layer.entries[key] = slot }
            return writes.count
        }
    }

    /// Records a change of the alarm in the overlay (the transaction's, when `inTransaction`). Returns at once.
    private func write(alarm: AlarmWrite, unconfirmed: Bool, inTransaction: Bool) throws {
        try record(unconfirmed: unconfirmed, inTransaction: inTransaction) { layer in
            layer.alarm = alarm
            return 1
        }
    }

    /// Applies `change` (which returns how many writes it made) to the transaction's layer or the dirty one.
    private func record(unconfirmed: Bool, inTransaction: Bool, _ change: (inout OverlayLayer) -> Int) throws {
        let flush = try state.withLock { state throws -> PreparedFlush? in
            if let failure = state.failure { throw failure }
            if inTransaction, state.transaction != nil {
                _ = change(&state.transaction!)
                return nil
            }
            state.writeSequence += UInt64(change(&state.dirty))
            Self.noteWrite(&state, unconfirmed: unconfirmed)
            return prepareFlush(&state)
        }
        flush.map(start)
    }

    /// Deletes every key of the object (and, by the caller, the alarm).
    func deleteAll(unconfirmed: Bool) throws {
        let flush = try state.withLock { state throws -> PreparedFlush? in
            if let failure = state.failure { throw failure }
            state.writeSequence += 1
            state.dirty = OverlayLayer(entries: [:], clearsBelow: true, maxSequence: state.writeSequence)
            if state.alarmRunning { state.alarmTouchedWhileRunning = true }
            state.cache.removeAll()
            state.cacheOrder.removeAll()
            state.cachedAlarm = nil
            Self.noteWrite(&state, unconfirmed: unconfirmed)
            return prepareFlush(&state)
        }
        flush.map(start)
    }

    private static func noteWrite(_ state: inout State, unconfirmed: Bool) {
        state.dirty.maxSequence = state.writeSequence
        if !unconfirmed { state.gateSequence = state.writeSequence }
        state.generation += 1
    }

    // MARK: Transactions

    /// Opens the transaction layer. Only one transaction runs at a time.
    func beginTransaction() throws {
        try state.withLock { state throws in
            if let failure = state.failure { throw failure }
            state.transaction = OverlayLayer()
        }
    }

    /// Discards the transaction layer (rollback) or moves it into the overlay as one group of writes (commit).
    func endTransaction(commit: Bool) throws {
        let flush = try state.withLock { state throws -> PreparedFlush? in
            guard let layer = state.transaction else { return nil }
            state.transaction = nil
            // A rolled-back setAlarm() or deleteAlarm() never happened, also for a running alarm handler.
            if commit && state.alarmTouchedInTransaction && state.alarmRunning { state.alarmTouchedWhileRunning = true }
            state.alarmTouchedInTransaction = false
            guard commit, !layer.entries.isEmpty || layer.alarm != nil else { return nil }
            if let failure = state.failure { throw failure }
            for (key, slot) in layer.entries {
                state.writeSequence += 1
                state.dirty.entries[key] = slot
            }
            if let alarm = layer.alarm {
                state.writeSequence += 1
                state.dirty.alarm = alarm
            }
            Self.noteWrite(&state, unconfirmed: false)
            return prepareFlush(&state)
        }
        flush.map(start)
    }

    var inTransaction: Bool { state.withLock { $0.transaction != nil } }

    // MARK: Turns and flushes

    /// A turn of the object began: writes from now on belong to it until it ends.
    func turnWillStart() {
        state.withLock { $0.turnActive = true }
    }

    /// A turn ended: flush what it wrote, unless a flush is in flight (then the next one carries it).
    func turnDidEnd() {
        let flush = state.withLock { state -> PreparedFlush? in
            state.turnActive = false
            return prepareFlush(&state)
        }
        flush.map(start)
    }

    private struct PreparedFlush {
        var batch: WriteBatch
    }

    /// Where the object's alarm is kept in the default column family.
    private var alarmRecordKey: [UInt8] {
        AlarmRecord.key(namespaceID: hooks.alarmNamespaceID, objectIDHex: DurableObjectId.hex(objectID))
    }

    /// Moves the dirty layer to `flushing` and builds its batch, when that is allowed now: no flush in flight, no
    /// turn half-way (a turn's writes never split across flushes), and something to write. Writes made off the
    /// object's executor (no turn) flush at once.
    private func prepareFlush(_ state: inout State) -> PreparedFlush? {
        guard state.flushing == nil, !state.turnActive, !state.dirty.isEmpty, state.failure == nil else { return nil }
        let layer = state.dirty
        state.dirty = OverlayLayer()
        state.flushing = layer
        var batch = WriteBatch()
        if state.firstFlushRecordPending, let record = hooks.firstFlushName,
            let metadata = try? database.defaultColumnFamily
        {
            state.firstFlushRecordPending = false
            batch.put(
                Array(record.name.utf8), forKey: ObjectNames.key(namespaceID: record.namespaceID, id: objectID),
                in: metadata)
        }
        if layer.clearsBelow {
            // No UTF-8 key contains the byte 0xFF, so `id ‖ 0xFF` is above every key of the object.
            batch.deleteRange(from: objectID, to: objectID + [0xFF], in: family)
        }
        // The alarm lives in the default column family (which always exists); deleteAll() removes it too.
        if let alarm = layer.alarm ?? (layer.clearsBelow ? .deleted : nil),
            let metadata = try? database.defaultColumnFamily
        {
            switch alarm {
            case .set(let milliseconds):
                batch.put(AlarmRecord.encode(milliseconds), forKey: alarmRecordKey, in: metadata)
            case .deleted: batch.delete(alarmRecordKey, in: metadata)
            }
        }
        for (key, slot) in layer.entries {
            let storageKey = ObjectKeySpace.storageKey(objectID: objectID, userKeyBytes: key)
            switch slot {
            case .value(let value): batch.put(value, forKey: storageKey, in: family)
            case .deleted: batch.delete(storageKey, in: family)
            }
        }
        return PreparedFlush(batch: batch)
    }

    private func start(_ flush: PreparedFlush) {
        committer.commit(flush.batch, check: hooks.writeCheck) { result in
            self.flushCompleted(result)
        }
    }

    private func flushCompleted(_ result: Result<Void, any Error>) {
        var resumed: [CheckedContinuation<Void, any Error>] = []
        var failed: [CheckedContinuation<Void, any Error>] = []
        var settled: [CheckedContinuation<Void, Never>] = []
        var failure: (any Error)?
        var alarmChange: Int64??
        defer { for waiter in settled { waiter.resume() } }
        let next = state.withLock { state -> PreparedFlush? in
            guard let layer = state.flushing else { return nil }
            state.flushing = nil
            state.generation += 1
            defer {
                if state.flushing == nil {
                    settled = state.settleWaiters
                    state.settleWaiters.removeAll()
                }
            }
            switch result {
            case .success:
                state.durableSequence = max(state.durableSequence, layer.maxSequence)
                if layer.clearsBelow {
                    state.cache.removeAll()
                    state.cacheOrder.removeAll()
                }
                for (key, slot) in layer.entries { Self.remember(&state, key, slot, capacity: hooks.cacheCapacity) }
                if let alarm = layer.alarm ?? (layer.clearsBelow ? .deleted : nil) {
                    state.cachedAlarm = alarm
                    alarmChange = .some(alarm.milliseconds)
                }
                let durable = state.durableSequence
                state.waiters.removeAll { waiter in
                    guard waiter.target <= durable else { return false }
                    resumed.append(waiter.continuation)
                    return true
                }
                // A stopped engine flushes nothing more: whoever waits for a later write is told it failed.
                if state.failure != nil {
                    failed = state.waiters.map(\.continuation)
                    state.waiters.removeAll()
                }
                return prepareFlush(&state)
            case .failure(let error):
                failure = error
                if state.failure == nil { state.failure = .instanceInactive }
                failed = state.waiters.map(\.continuation)
                state.waiters.removeAll()
                return nil
            }
        }
        for continuation in resumed { continuation.resume() }
        for continuation in failed { continuation.resume(throwing: DurableObjectError.storageWriteFailed) }
        if let failure { hooks.flushFailed(failure) }
        if let alarmChange { hooks.alarmChanged(alarmChange) }
        next.map(start)
    }

    // MARK: Alarm

    /// The object's alarm (milliseconds since the epoch) as its handlers see it: the overlays first, then the
    /// node's metadata; `nil` inside a running alarm handler unless the alarm was set again meanwhile.
    func readAlarm(inTransaction: Bool) throws -> Int64? {
        let found = try state.withLock { state throws -> (alarm: AlarmWrite?, hidden: Bool, generation: UInt64) in
            if let failure = state.failure { throw failure }
            let hidden = state.alarmRunning && !state.alarmTouchedWhileRunning
            for layer in Self.layers(state, inTransaction: inTransaction) {
                if let alarm = layer.alarm { return (alarm, hidden, 0) }
                if layer.clearsBelow { return (.deleted, hidden, 0) }
            }
            return (state.cachedAlarm, hidden, state.generation)
        }
        if found.hidden { return nil }
        if let alarm = found.alarm { return alarm.milliseconds }
        let stored: Int64?
        do {
            stored = try database.get(alarmRecordKey, in: database.defaultColumnFamily).flatMap(
                AlarmRecord.decode)
        } catch {
            throw DurableObjectError(.internal, "Durable Object storage read failed: \(error)")
        }
        state.withLock { state in
            if state.generation == found.generation { state.cachedAlarm = stored.map(AlarmWrite.set) ?? .deleted }
        }
        return stored
    }

    /// Sets (`milliseconds`) or deletes (`nil`) the alarm, as a write of the current turn.
    func writeAlarm(_ milliseconds: Int64?, unconfirmed: Bool, inTransaction: Bool) throws {
        if milliseconds != nil, !hooks.handlesAlarms { throw DurableObjectError.noAlarmHandler }
        try write(
            alarm: milliseconds.map(AlarmWrite.set) ?? .deleted, unconfirmed: unconfirmed, inTransaction: inTransaction)
        state.withLock { state in
            if inTransaction {
                state.alarmTouchedInTransaction = true
            } else if state.alarmRunning {
                state.alarmTouchedWhileRunning = true
            }
        }
    }

    /// An alarm handler starts: from now on `getAlarm()` answers `nil` until the alarm is set again.
    func alarmHandlerWillRun() {
        state.withLock { state in
            state.alarmRunning = true
            state.alarmTouchedWhileRunning = false
        }
    }

    /// The alarm handler finished. When it succeeded and nobody set or deleted the alarm meanwhile, the alarm that
    /// fired is removed, in the handler's last flush.
    func alarmHandlerDidRun(succeeded: Bool) throws {
        let touched = state.withLock { state -> Bool in
            defer {
                state.alarmRunning = false
                state.alarmTouchedWhileRunning = false
            }
            return state.alarmTouchedWhileRunning
        }
        if succeeded, !touched {
            try write(alarm: .deleted, unconfirmed: false, inTransaction: false)
        }
    }

    // MARK: Output gate

    /// The sequence number an outgoing message made now must wait for.
    var gateSequence: UInt64 { state.withLock { $0.gateSequence } }
    /// The sequence number of the last write made so far.
    var writeSequence: UInt64 { state.withLock { $0.writeSequence } }

    /// Whether every write up to `target` is durable now.
    func isDurable(_ target: UInt64) -> Bool {
        state.withLock { $0.durableSequence >= target }
    }

    /// Returns once every write up to `target` is durable.
    ///
    /// - Throws: ``DurableObjectError/storageWriteFailed`` when a flush carrying those writes failed.
    func waitUntilDurable(_ target: UInt64) async throws {
        if state.withLock({ $0.durableSequence >= target }) { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            let outcome = state.withLock { state -> Result<Bool, DurableObjectError> in
                if state.durableSequence >= target { return .success(true) }
                // Stopped: only a write in the flush still in flight may yet become durable.
                if state.failure != nil, target > (state.flushing?.maxSequence ?? state.durableSequence) {
                    return .failure(.storageWriteFailed)
                }
                state.waiters.append(Waiter(target: target, continuation: continuation))
                return .success(false)
            }
            switch outcome {
            case .success(true): continuation.resume()
            case .success(false): break
            case .failure(let error): continuation.resume(throwing: error)
            }
        }
    }

    /// Whether nothing is waiting to be written.
    var isClean: Bool { state.withLock { $0.dirty.isEmpty && $0.flushing == nil } }

    /// Stops the engine: later reads and writes throw `error`, and nothing more is flushed.
    ///
    /// Output-gate waiters for writes that will never be flushed fail now. A flush already handed to the group
    /// committer is not abandoned: it may still be written (its check ran before the stop) or be refused, and whoever
    /// waits for its writes learns which, so that a caller is told success exactly when its writes are durable.
    func invalidate(_ error: DurableObjectError) {
        let failed = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            if state.failure == nil { state.failure = error }
            let inFlight = state.flushing?.maxSequence ?? state.durableSequence
            var failed: [CheckedContinuation<Void, any Error>] = []
            state.waiters.removeAll { waiter in
                guard waiter.target > inFlight else { return false }
                failed.append(waiter.continuation)
                return true
            }
            return failed
        }
        for continuation in failed { continuation.resume(throwing: DurableObjectError.storageWriteFailed) }
    }

    /// Returns once no flush of this engine is in flight: the last one handed to the group committer was written or
    /// refused. A new activation of the object waits for this before it reads anything.
    func waitUntilSettled() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let now = state.withLock { state -> Bool in
                if state.flushing == nil { return true }
                state.settleWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// Whether a flush is in flight.
    var isFlushing: Bool { state.withLock { $0.flushing != nil } }

    // MARK: Helpers

    private static func layers(_ state: State, inTransaction: Bool) -> [OverlayLayer] {
        var layers: [OverlayLayer] = []
        if inTransaction, let transaction = state.transaction { layers.append(transaction) }
        layers.append(state.dirty)
        if let flushing = state.flushing { layers.append(flushing) }
        return layers
    }

    private static func remember(_ state: inout State, _ key: [UInt8], _ slot: OverlaySlot, capacity: Int) {
        guard capacity > 0 else { return }
        if state.cache.updateValue(slot, forKey: key) == nil { state.cacheOrder.append(key) }
        while state.cache.count > capacity, let oldest = state.cacheOrder.popFirst() {
            state.cache[oldest] = nil
        }
    }
}
