import Dispatch
import Synchronization

/// Makes many concurrent writers share one synced write-ahead-log write.
///
/// Writers hand their batches to ``commit(_:check:)`` and are resumed only once their batch is durable. A single
/// commit thread takes every batch that is waiting at that moment, writes them as one RocksDB write with `sync`,
/// and resumes their writers; batches that arrive meanwhile form the next group. A group is one atomic write, so
/// each batch in it is atomic too: after a crash either all of a batch is on disk or none of it.
///
/// With a ``WriteReplication`` installed on the database (a primary with a standby), a batch counts as durable once
/// the standby has its group too; the commit thread writes the next group meanwhile.
///
/// With one writer this costs one `fsync` per batch, like a plain synced write; with many writers the cost of an
/// `fsync` is shared by all the batches that waited for it.
public final class GroupCommitter: Sendable {
    /// Counters of the work done so far.
    public struct Statistics: Sendable, Equatable {
        /// Batches committed (or failed) so far.
        public var batches = 0
        /// Synced writes issued: one per group.
        public var groups = 0
        /// The most batches that shared one synced write.
        public var largestGroup = 0
        /// Total time spent in synced writes, in nanoseconds.
        public var syncNanoseconds: UInt64 = 0
    }

    /// A check run on the commit thread just before a batch joins a group; if it throws, that batch fails with
    /// the error and is not written, and the rest of the group is unaffected.
    public typealias Check = @Sendable () throws -> Void

    /// Called once a batch is durable (`.success`) or has failed; runs on the commit thread, so it must be
    /// quick and must not block.
    public typealias Completion = @Sendable (Result<Void, any Error>) -> Void

    private struct Pending {
        var batch: WriteBatch
        var check: Check?
        var completion: Completion
    }

    /// What waits for the commit thread: a batch, or work that must run between two groups.
    private enum Item {
        case batch(Pending)
        case exclusive(@Sendable () -> Void)
    }

    private struct State {
        var queue: [Item] = []
        var draining = false
        var statistics = Statistics()
        var exclusiveWaiting = 0
    }

    /// The database the batches go to.
    public let database: Database
    private let state = Mutex(State())
    private let thread: DispatchQueue
    private let maximumGroupBytes: Int
    private let metrics: GroupCommitMetrics

    /// Creates a committer for `database`.
    ///
    /// - Parameters:
    ///   - database: the database every batch is written to.
    ///   - maximumGroupBytes: a group stops taking batches once it carries this many bytes (one batch is always
    ///     taken), so that one huge group does not delay everybody.
    ///   - metrics: where batch sizes and sync latencies are reported.
    public init(
        database: Database, maximumGroupBytes: Int = 32 << 20, metrics: GroupCommitMetrics = GroupCommitMetrics()
    ) {
        self.database = database
        self.maximumGroupBytes = maximumGroupBytes
        self.metrics = metrics
        self.thread = DispatchQueue(label: "durable.group-commit", qos: .userInitiated)
    }

    /// The counters so far.
    public var statistics: Statistics { state.withLock { $0.statistics } }

    /// Writes `batch` durably, sharing the `fsync` with whatever other batches are waiting.
    ///
    /// Returns once the batch is on disk (the write-ahead log synced). An empty batch returns at once.
    /// - Parameters:
    ///   - batch: the writes to make durable together.
    ///   - check: run on the commit thread just before the write; if it throws, the batch is not written and this
    ///     call throws its error. Use it for conditions that must hold at the moment of writing.
    /// - Throws: the `check`'s error, or a ``StorageError`` when the batch cannot be written; in both cases
    ///   nothing of the batch is on disk.
    public func commit(_ batch: WriteBatch, check: Check? = nil) async throws {
        if batch.isEmpty && check == nil { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            commit(batch, check: check) { result in continuation.resume(with: result) }
        }
    }

    /// Queues `batch` for the next group and calls `completion` once it is durable or has failed. The same as
    /// ``commit(_:check:)`` without a task switch, for callers that run their own scheduling.
    public func commit(_ batch: WriteBatch, check: Check? = nil, completion: @escaping Completion) {
        enqueue(.batch(Pending(batch: batch, check: check, completion: completion)))
    }

    /// Runs `work` on the commit thread between two groups, and returns once it has run: after every batch queued
    /// before it is written (or refused), before any batch queued after it is checked.
    ///
    /// This is what makes a change to what the batches' checks test atomic with respect to writes: a placement
    /// epoch raised here either happens before a batch's check (the batch is refused) or waits for its write.
    public func exclusively(_ work: @escaping @Sendable () -> Void) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            state.withLock { $0.exclusiveWaiting += 1 }
            enqueue(
                .exclusive {
                    work()
                    continuation.resume()
                })
        }
    }

    /// How many ``exclusively(_:)`` calls wait for the commit thread now.
    public var exclusiveWorkWaiting: Int { state.withLock { $0.exclusiveWaiting } }

    private func enqueue(_ item: Item) {
        let startDrain = state.withLock { state in
            state.queue.append(item)
            if state.draining { return false }
            state.draining = true
            return true
        }
        if startDrain { thread.async { self.drain() } }
    }

    /// Runs on the commit thread until the queue is empty: each turn either runs one piece of exclusive work or
    /// writes one group (the batches up to the next exclusive work, within the byte bound).
    private func drain() {
        enum Next {
            case done
            case exclusive(@Sendable () -> Void)
            case group([Pending])
        }
        while true {
            let next: Next = state.withLock { state in
                guard let first = state.queue.first else {
                    state.draining = false
                    return .done
                }
                if case .exclusive(let work) = first {
                    state.queue.removeFirst()
                    state.exclusiveWaiting -= 1
                    return .exclusive(work)
                }
                var bytes = 0
                var group: [Pending] = []
                for item in state.queue {
                    guard case .batch(let pending) = item else { break }
                    if !group.isEmpty && bytes + pending.batch.byteCount > maximumGroupBytes { break }
                    bytes += pending.batch.byteCount
                    group.append(pending)
                }
                state.queue.removeFirst(group.count)
                return .group(group)
            }
            switch next {
            case .done: return
            case .exclusive(let work): work()
            case .group(let group): write(group)
            }
        }
    }

    private func write(_ group: [Pending]) {
        var accepted: [Pending] = []
        accepted.reserveCapacity(group.count)
        for pending in group {
            do {
                try pending.check?()
                try database.validate(pending.batch)
                accepted.append(pending)
            } catch {
                pending.completion(.failure(error))
            }
        }
        let started = DispatchTime.now().uptimeNanoseconds
        var failure: (any Error)?
        var sequence: UInt64?
        if !accepted.isEmpty {
            do {
                sequence = try database.writeReplicated(accepted.map(\.batch), sync: true)
            } catch {
                failure = error
            }
        }
        let elapsed = DispatchTime.now().uptimeNanoseconds - started
        state.withLock { state in
            state.statistics.batches += group.count
            if !accepted.isEmpty {
                state.statistics.groups += 1
                state.statistics.largestGroup = max(state.statistics.largestGroup, accepted.count)
                state.statistics.syncNanoseconds += elapsed
            }
        }
        if !accepted.isEmpty {
            metrics.recordSync(
                batches: accepted.count, bytes: accepted.reduce(0) { $0 + $1.batch.byteCount }, nanoseconds: elapsed,
                failed: failure != nil)
        }
        if failure == nil, let sequence, let replication = database.replication {
            // Durable here; acknowledged once the standby has it too. The commit thread goes on with the next group
            // meanwhile.
            let completions = accepted.map(\.completion)
            replication.whenReplicated(sequence) { result in
                for completion in completions { completion(result) }
            }
            return
        }
        for pending in accepted {
            if let failure {
                pending.completion(.failure(failure))
            } else {
                pending.completion(.success(()))
            }
        }
    }
}
