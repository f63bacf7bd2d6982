import Synchronization

/// The alarms a runtime has to deliver, each waiting for its time in a task of its own.
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
        var generation: UInt64
        var task: Task<Void, Never>
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var firing: Set<Key> = []
        var nextGeneration: UInt64 = 0
        var stopped = false
    }

    private let state = Mutex(State())
    private let deliver: @Sendable (Delivery) async -> Void
    private let clock: any RuntimeClock

    /// Creates a scheduler that hands every due alarm, by `clock`, to `deliver`.
    init(clock: any RuntimeClock, deliver: @escaping @Sendable (Delivery) async -> Void) {
        self.clock = clock
        self.deliver = deliver
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
        state.withLock { $0.entries.removeValue(forKey: key) }?.task.cancel()
    }

    /// Cancels every alarm of the namespace.
    func cancelNamespace(_ namespaceID: String) {
        let removed = state.withLock { state -> [Entry] in
            let keys = state.entries.keys.filter { $0.namespaceID == namespaceID }
            return keys.compactMap { state.entries.removeValue(forKey: $0) }
        }
        for entry in removed { entry.task.cancel() }
    }

    /// The time the scheduled alarm of `key` was set for (milliseconds since the epoch), if one is scheduled.
    func scheduledTime(of key: Key) -> Int64? {
        state.withLock { $0.entries[key]?.delivery.scheduledTime }
    }

    /// How many alarms wait for their time.
    var scheduledCount: Int { state.withLock { $0.entries.count } }

    /// Cancels everything; nothing is scheduled afterwards.
    func stop() {
        let entries = state.withLock { state -> [Entry] in
            state.stopped = true
            defer { state.entries.removeAll() }
            return Array(state.entries.values)
        }
        for entry in entries { entry.task.cancel() }
    }

    // MARK: Internals

    private func schedule(_ delivery: Delivery, at due: Int64, onlyIfIdle: Bool, allowWhileFiring: Bool = false) {
        let key = delivery.key
        let previous = state.withLock { state -> Entry? in
            guard !state.stopped else { return nil }
            if onlyIfIdle, state.entries[key] != nil || (!allowWhileFiring && state.firing.contains(key)) { return nil }
            state.nextGeneration += 1
            let generation = state.nextGeneration
            let clock = self.clock
            let task = Task { [weak self] in
                do { try await clock.sleep(untilEpochMilliseconds: due) } catch { return }
                await self?.fire(key, generation: generation)
            }
            return state.entries.updateValue(Entry(delivery: delivery, generation: generation, task: task), forKey: key)
        }
        previous?.task.cancel()
    }

    private func fire(_ key: Key, generation: UInt64) async {
        let delivery = state.withLock { state -> Delivery? in
            guard let entry = state.entries[key], entry.generation == generation, !state.stopped else { return nil }
            state.entries[key] = nil
            state.firing.insert(key)
            return entry.delivery
        }
        guard let delivery else { return }
        await deliver(delivery)
        _ = state.withLock { $0.firing.remove(key) }
    }
}
