import HeapModule
import Synchronization

/// The alarms a runtime has to deliver, waiting for their times in one timer loop: it sleeps until the earliest due
/// alarm (woken early when an earlier one is scheduled) and hands each due alarm to its own delivery task.
///
/// Alarms come from three places: the node's metadata when a namespace is served (``load(_:at:)``), flushes that
/// set or delete an object's alarm (``set(_:at:)``), and failed deliveries waiting to be retried
/// (``retry(_:scheduledTime:retryCount:after:)``). An alarm being delivered is not scheduled again from the
/// metadata, so a namespace served again meanwhile does not deliver it twice.
final class AlarmScheduler: Sendable {
    /// Which object an alarm belongs to.
    struct Key: Hashable, Sendable {
        var namespaceID: String
        var id: [UInt8]
    }

    /// One delivery to make: the object, the time the alarm was set for, and how many deliveries failed before.
    struct Delivery: Sendable {
        var key: Key
        var scheduledTime: Int64
        var retryCount: Int
    }

    private struct Entry {
        var delivery: Delivery
        var due: Int64
        var generation: UInt64
    }

    /// A due time in the timer's heap; stale once its entry was replaced or cancelled (another generation).
    private struct Timer: Comparable {
        var due: Int64
        var generation: UInt64
        var key: Key

        static func < (lhs: Timer, rhs: Timer) -> Bool {
            (lhs.due, lhs.generation) < (rhs.due, rhs.generation)
        }

        static func == (lhs: Timer, rhs: Timer) -> Bool {
            lhs.due == rhs.due && lhs.generation == rhs.generation
        }
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var timers = Heap<Timer>()
        var firing: Set<Key> = []
        var nextGeneration: UInt64 = 0
        var stopped = false
        /// The loop's current sleep and the time it sleeps until (`nil`: until something is scheduled).
        var sleep: (task: Task<Void, Never>, until: Int64?)?
        /// Bumped by every schedule, so that the loop notices one made while it chose how long to sleep.
        var changes: UInt64 = 0
    }

    private let state = Mutex(State())
    private let deliver: @Sendable (Delivery) async -> Void
    private let clock: any RuntimeClock

    /// Creates a scheduler that hands every due alarm, by `clock`, to `deliver`.
    init(clock: any RuntimeClock, deliver: @escaping @Sendable (Delivery) async -> Void) {
        self.clock = clock
        self.deliver = deliver
        Task { [weak self] in
            while let sleep = self?.nextSleep() {
                await sleep.value
                self?.fireDue()
            }
        }
    }

    /// Schedules (replacing any earlier time) or, with `nil`, cancels the alarm of `key`: a flush changed it.
    func set(_ key: Key, at time: Int64?) {
        guard let time else {
            cancel(key)
            return
        }
        schedule(Delivery(key: key, scheduledTime: time, retryCount: 0), at: time, onlyIfIdle: false)
    }

    /// Schedules an alarm found in the node's metadata, unless it is scheduled or being delivered already.
    func load(_ key: Key, at time: Int64) {
        schedule(Delivery(key: key, scheduledTime: time, retryCount: 0), at: time, onlyIfIdle: true)
    }

    /// Schedules another delivery of an alarm whose handler failed, unless a new alarm was set meanwhile.
    func retry(_ key: Key, scheduledTime: Int64, retryCount: Int, after delay: Duration) {
        let due = clock.epochMilliseconds + Int64(delay / .milliseconds(1))
        schedule(
            Delivery(key: key, scheduledTime: scheduledTime, retryCount: retryCount), at: due, onlyIfIdle: true,
            allowWhileFiring: true)
    }

    /// Cancels the alarm of `key`, if scheduled.
    func cancel(_ key: Key) {
        _ = state.withLock { $0.entries.removeValue(forKey: key) }
    }

    /// Cancels every alarm of the namespace.
    func cancelNamespace(_ namespaceID: String) {
        state.withLock { state in
            for key in state.entries.keys where key.namespaceID == namespaceID { state.entries[key] = nil }
        }
    }

    /// The time the scheduled alarm of `key` was set for (milliseconds since the epoch), if one is scheduled.
    func scheduledTime(of key: Key) -> Int64? {
        state.withLock { $0.entries[key]?.delivery.scheduledTime }
    }

    /// How many alarms wait for their time.
    var scheduledCount: Int { state.withLock { $0.entries.count } }

    /// Cancels everything; nothing is scheduled afterwards, and the timer loop ends.
    func stop() {
        let sleep = state.withLock { state -> Task<Void, Never>? in
            state.stopped = true
            state.entries.removeAll()
            state.timers = Heap()
            return state.sleep?.task
        }
        sleep?.cancel()
    }

    // MARK: The timer loop

    private func schedule(_ delivery: Delivery, at due: Int64, onlyIfIdle: Bool, allowWhileFiring: Bool = false) {
        let key = delivery.key
        let wake = state.withLock { state -> Task<Void, Never>? in
            guard !state.stopped else { return nil }
            if onlyIfIdle, state.entries[key] != nil || (!allowWhileFiring && state.firing.contains(key)) { return nil }
            state.nextGeneration += 1
            state.entries[key] = Entry(delivery: delivery, due: due, generation: state.nextGeneration)
            state.timers.insert(Timer(due: due, generation: state.nextGeneration, key: key))
            state.changes += 1
            // Wake the loop when it sleeps past this alarm's time.
            guard let sleep = state.sleep, sleep.until.map({ due < $0 }) ?? true else { return nil }
            return sleep.task
        }
        wake?.cancel()
    }

    /// The loop's next sleep: until the earliest live timer, or until something is scheduled; `nil` once stopped.
    private func nextSleep() -> Task<Void, Never>? {
        let (until, changes) = state.withLock { state -> (Int64??, UInt64) in
            guard !state.stopped else { return (nil, state.changes) }
            Self.dropStale(&state)
            return (.some(state.timers.min?.due), state.changes)
        }
        guard case .some(let due) = until else { return nil }
        let clock = self.clock
        let task = Task<Void, Never> {
            if let due {
                _ = try? await clock.sleep(untilEpochMilliseconds: due)
            } else {
                // Nothing to wait for: sleep (on the real clock) until a schedule wakes the loop.
                _ = try? await Task.sleep(for: .seconds(86_400))
            }
        }
        let current = state.withLock { state -> Bool in
            guard !state.stopped, state.changes == changes else { return false }
            state.sleep = (task, due)
            return true
        }
        // Something was scheduled (or the scheduler stopped) meanwhile: choose again at once.
        if !current { task.cancel() }
        return task
    }

    /// Hands every alarm that is due to a delivery task of its own.
    private func fireDue() {
        let now = clock.epochMilliseconds
        let due = state.withLock { state -> [Delivery] in
            state.sleep = nil
            guard !state.stopped else { return [] }
            var due: [Delivery] = []
            while let timer = state.timers.min, timer.due <= now {
                state.timers.removeMin()
                guard let entry = state.entries[timer.key], entry.generation == timer.generation else { continue }
                state.entries[timer.key] = nil
                state.firing.insert(timer.key)
                due.append(entry.delivery)
            }
            return due
        }
        for delivery in due {
            Task {
                await deliver(delivery)
                _ = state.withLock { $0.firing.remove(delivery.key) }
            }
        }
    }

    /// Removes the timers whose entries were replaced or cancelled from the top of the heap.
    private static func dropStale(_ state: inout State) {
        while let timer = state.timers.min,
            state.entries[timer.key].map({ $0.generation != timer.generation }) ?? true
        {
            state.timers.removeMin()
        }
    }
}
