import DequeModule
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// What an ``ObjectExecutor`` tells the runtime about turns.
///
/// A *turn* is one job of the object's actor: everything it runs from one resumption to its next real suspension.
/// The runtime flushes the writes of a turn after it ends, and delivers the next queued event when the executor
/// has nothing left to run.
protocol TurnObserver: AnyObject, Sendable {
    /// A turn is about to run on the calling thread.
    func turnWillStart()
    /// The turn ended; `queueEmpty` tells whether the executor has nothing else to run now.
    func turnDidEnd(queueEmpty: Bool)
    /// The executor stopped running: a caller that found it busy a moment ago may be waiting for this.
    func executorDidBecomeIdle()
}

/// The serial executor of one object: runs its jobs one at a time, in order, on a shared thread pool, and tells
/// the runtime where each turn ends.
///
/// Every object actor names its activation's executor as its `unownedExecutor` (the ``DurableObject`` protocol
/// does it for you), so all code isolated to the object runs here.
///
/// It is also a `TaskExecutor`: the runtime makes it the preferred executor of a call's task while the call waits
/// in the object's queue and runs its turns, so that delivering the next event from the end of a turn resumes its
/// task on the thread already draining this executor, with no hop to another thread and back.
public final class ObjectExecutor: SerialExecutor, TaskExecutor, @unchecked Sendable {
    private struct State {
        var jobs = Deque<UnownedJob>()
        var running = false
    }

    private let state = Mutex(State())
    private let observerBox = Mutex<WeakObserver>(WeakObserver())
    private static let pool = DispatchQueue.global(qos: .userInitiated)

    /// Where executors run their drains. By default, Dispatch's global pool; a process whose Swift tasks run on
    /// its own threads (durable's event loops) sets this once, before any object starts, so that an object's turn
    /// runs on the thread that delivered its call instead of waking another one.
    public nonisolated(unsafe) static var drainScheduler: (@Sendable (@escaping @Sendable () -> Void) -> Void)?

    /// Creates an executor with no observer.
    init() {}

    func setObserver(_ observer: any TurnObserver) {
        observerBox.withLock { $0.value = observer }
    }

    /// Whether a job is running or queued.
    var isBusy: Bool { state.withLock { $0.running } }

    /// Queues a job; starts a drain on the pool when none runs.
    public func enqueue(_ job: consuming ExecutorJob) {
        let unownedJob = UnownedJob(job)
        let start = state.withLock { state in
            state.jobs.append(unownedJob)
            if state.running { return false }
            state.running = true
            return true
        }
        guard start else { return }
        if let schedule = Self.drainScheduler {
            schedule { self.drain() }
        } else {
            Self.pool.async { self.drain() }
        }
    }

    private func drain() {
        let observer = observerBox.withLock { $0.value }
        let previous = CurrentExecutor.get()
        CurrentExecutor.set(self)
        defer { CurrentExecutor.set(previous) }
        while true {
            guard let job = state.withLock({ $0.jobs.popFirst() }) else {
                // Checked again under the lock: a job may have arrived since.
                let stopped = state.withLock { state in
                    if state.jobs.isEmpty {
                        state.running = false
                        return true
                    }
                    return false
                }
                if stopped {
                    observer?.executorDidBecomeIdle()
                    return
                }
                continue
            }
            observer?.turnWillStart()
            job.runSynchronously(isolatedTo: asUnownedSerialExecutor(), taskExecutor: asUnownedTaskExecutor())
            let queueEmpty = state.withLock { $0.jobs.isEmpty }
            observer?.turnDidEnd(queueEmpty: queueEmpty)
        }
    }

    /// Whether the calling thread is running a job of this executor.
    public var isCurrent: Bool { CurrentExecutor.get() === self }

    /// Traps unless the calling thread runs this executor's job (used by `assumeIsolated` and isolation checks).
    public func checkIsolated() {
        precondition(isCurrent, "not running on this durable object's executor")
    }

    /// The executor as the runtime's unowned reference.
    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// The executor as a task executor, unowned.
    public func asUnownedTaskExecutor() -> UnownedTaskExecutor {
        UnownedTaskExecutor(ordinary: self)
    }
}

private struct WeakObserver: @unchecked Sendable {
    weak var value: (any TurnObserver)?
}

/// The executor whose job the calling thread is running, kept in a thread-local slot.
enum CurrentExecutor {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static func get() -> ObjectExecutor? {
        guard let pointer = pthread_getspecific(key) else { return nil }
        return Unmanaged<ObjectExecutor>.fromOpaque(pointer).takeUnretainedValue()
    }

    static func set(_ executor: ObjectExecutor?) {
        pthread_setspecific(key, executor.map { Unmanaged.passUnretained($0).toOpaque() })
    }
}
