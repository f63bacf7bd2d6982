import DequeModule

/// The bounded inbound queue of one object, and the counters that say whether the object may take its next event
/// or may be evicted. A value type without locking: its owner (the activation) keeps it under its own lock, so that
/// admission, delivery and retirement are each one step.
///
/// Invariants, after every operation (``violatedInvariant`` names the first one broken):
/// - `queuedBytes` is the sum of the queued events' bytes, and the queue holds at most
///   ``MailboxLimits/maxQueuedRequests`` events and ``MailboxLimits/maxQueuedBytes`` bytes — the bounds are checked
///   when an event is admitted, so a lowered bound never drops events already queued;
/// - `inFlight` counts every event admitted and not yet answered: the queued ones, the delivered ones waiting for
///   their first turn (`awaitingStart`) and the running ones; no counter is ever negative;
/// - the next event is delivered only when the input gate is open (`gateHolds == 0`), no delivered event is still
///   waiting for its first turn, and the object's executor is idle: one event at a time, in arrival order.
struct Mailbox<Item> {
    /// One admitted event waiting in the queue.
    struct Entry {
        var ticket: UInt64
        var bytes: Int
        var enqueuedAt: ContinuousClock.Instant
        var deadline: ContinuousClock.Instant?
        var item: Item
    }

    /// What became of an event taken from the head of the queue.
    enum Verdict {
        /// Its turn came: hand it to the object.
        case deliver
        /// It waited longer than ``MailboxLimits/maxQueueAge``: refuse it as overloaded.
        case expired
        /// Its caller's deadline passed while it waited.
        case deadlinePassed
    }

    let limits: MailboxLimits
    private(set) var queue = Deque<Entry>()
    private(set) var queuedBytes = 0
    /// Input-gate holds: the start-up, `blockConcurrencyWhile` calls, transactions. The start-up holds it at first.
    private(set) var gateHolds = 1
    /// Events delivered whose first turn has not started yet.
    private(set) var awaitingStart = 0
    /// Events admitted and not yet answered.
    private(set) var inFlight = 0
    /// When the object last took or finished an event (nil: never).
    private(set) var lastActivity: ContinuousClock.Instant?
    private var nextTicket: UInt64 = 0

    init(limits: MailboxLimits) {
        self.limits = limits
    }

    /// Queues an event of `bytes` body bytes at `now` and returns its ticket.
    ///
    /// - Throws: ``DurableObjectError/tooManyRequestsQueued`` or ``DurableObjectError/tooMuchDataQueued`` when the
    ///   event would exceed a bound (it is not queued).
    mutating func admit(
        _ item: Item, bytes: Int, deadline: ContinuousClock.Instant?, now: ContinuousClock.Instant
    ) throws(DurableObjectError) -> UInt64 {
        if queue.count + 1 > limits.maxQueuedRequests { throw .tooManyRequestsQueued }
        if queuedBytes + bytes > limits.maxQueuedBytes { throw .tooMuchDataQueued }
        nextTicket += 1
        queue.append(Entry(ticket: nextTicket, bytes: bytes, enqueuedAt: now, deadline: deadline, item: item))
        queuedBytes += bytes
        inFlight += 1
        lastActivity = now
        return nextTicket
    }

    /// Takes the event with `ticket` out of the queue (its caller gave up); `nil` when it is no longer queued.
    mutating func withdraw(_ ticket: UInt64) -> Entry? {
        guard let index = queue.firstIndex(where: { $0.ticket == ticket }) else { return nil }
        let entry = queue.remove(at: index)
        queuedBytes -= entry.bytes
        inFlight -= 1
        return entry
    }

    /// Whether an event may be delivered now: the gate is open, no delivered event awaits its first turn, and the
    /// executor is idle.
    func canDeliver(executorIdle: Bool) -> Bool {
        gateHolds == 0 && awaitingStart == 0 && executorIdle
    }

    /// Takes events from the head of the queue until one is to be delivered (or the queue is empty): those that
    /// waited past the age bound (by the runtime's clock, `now`) or past their caller's deadline (real time,
    /// `realNow`) come out refused on the way. The delivered one counts as awaiting its first turn.
    mutating func takeNext(now: ContinuousClock.Instant, realNow: ContinuousClock.Instant) -> [(Entry, Verdict)] {
        var taken: [(Entry, Verdict)] = []
        while let head = queue.popFirst() {
            queuedBytes -= head.bytes
            if now - head.enqueuedAt > limits.maxQueueAge {
                inFlight -= 1
                taken.append((head, .expired))
                continue
            }
            if let deadline = head.deadline, realNow >= deadline {
                inFlight -= 1
                taken.append((head, .deadlinePassed))
                continue
            }
            awaitingStart += 1
            taken.append((head, .deliver))
            break
        }
        return taken
    }

    /// A delivered event's first turn started.
    mutating func eventStarted() {
        awaitingStart -= 1
    }

    /// An admitted event was answered at `now`.
    mutating func eventAnswered(now: ContinuousClock.Instant) {
        inFlight -= 1
        lastActivity = now
    }

    /// Closes the input gate once more.
    mutating func closeGate() {
        gateHolds += 1
    }

    /// Opens the input gate once (it is open when every hold is released).
    mutating func openGate() {
        gateHolds -= 1
    }

    /// Empties the queue (the activation retires); returns what was queued, for its callers to go elsewhere.
    mutating func removeAll() -> [Entry] {
        let queued = Array(queue)
        queue.removeAll()
        queuedBytes = 0
        inFlight -= queued.count
        return queued
    }

    /// Whether nothing is queued, running, awaiting its turn or holding the gate.
    var isIdle: Bool {
        queue.isEmpty && inFlight == 0 && gateHolds == 0 && awaitingStart == 0
    }

    /// The first invariant that does not hold, in words; `nil` when all hold.
    var violatedInvariant: String? {
        if queuedBytes != queue.reduce(0, { $0 + $1.bytes }) { return "queuedBytes is not the queue's bytes" }
        if queue.count > limits.maxQueuedRequests { return "more events queued than maxQueuedRequests" }
        if queuedBytes > limits.maxQueuedBytes { return "more bytes queued than maxQueuedBytes" }
        if gateHolds < 0 { return "gateHolds is negative" }
        if awaitingStart < 0 { return "awaitingStart is negative" }
        if inFlight < queue.count + awaitingStart { return "inFlight is below the queued and awaiting events" }
        return nil
    }
}
