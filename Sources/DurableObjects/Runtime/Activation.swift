import DurableStorage
import Foundation
import Logging
import Synchronization

/// One live instance of one object, with its executor, storage engine and inbound queue.
///
/// Events wait in the queue until the object can take one: its initializer (and any `blockConcurrencyWhile` it
/// scheduled) has finished, no `blockConcurrencyWhile` or transaction holds the input gate, and the executor has
/// nothing left to run (the object is idle or suspended). Then the head of the queue is delivered; an event that
/// waited longer than the age bound is refused instead.
final class Activation: TurnObserver, ActivationControl, Sendable {
    enum Phase {
        case starting
        case ready(any DurableObject)
        case retired(DurableObjectError)
    }

    /// What an admitted caller gets once its turn comes.
    enum Admission {
        case delivered(any DurableObject)
        /// The activation was retired before delivery; admit again on a fresh one.
        case retry
    }

    private typealias Pending = Mailbox<DeliverySlot>.Entry

    private struct Inner {
        var phase: Phase = .starting
        /// The inbound queue and the counters of events in flight and gate holds.
        var mailbox: Mailbox<DeliverySlot>
        var startupBlocks: [@Sendable () async throws -> Void] = []
        /// Whether the start-up task was launched (by the first admitted event).
        var startLaunched = false
    }

    let namespace: NamespaceDefinition
    let id: DurableObjectId
    let executor = ObjectExecutor()
    let engine: StorageEngine
    private(set) nonisolated(unsafe) var state: DurableObjectState!
    private let inner: Mutex<Inner>
    private let clock: any RuntimeClock
    private let blockTimeout: Duration
    /// The runtime's logger, shared by every activation; ``logger`` adds the object to it when something is logged.
    private let runtimeLogger: Logger
    private weak let runtime: ObjectRuntime?

    private let make: @Sendable (DurableObjectState, Environment) -> any DurableObject
    private let environment: Environment

    /// The placement epoch of the object's slot when the activation was made.
    let epoch: UInt64
    /// Where the object's log lines and uncaught errors go while someone tails.
    private let tap: ObjectLogTap

    /// The storage of the activation this one replaces, while its last flush is unresolved: this one reads nothing
    /// before that flush is written or refused.
    private let predecessor: StorageEngine?

    init(
        runtime: ObjectRuntime, namespace: NamespaceDefinition, id: DurableObjectId, epoch: UInt64,
        family: ColumnFamily,
        configuration: RuntimeConfiguration,
        make: @escaping @Sendable (DurableObjectState, Environment) -> any DurableObject,
        handlesAlarms: Bool, environment: Environment, storageMetrics: StorageMetrics, logger: Logger,
        predecessor: StorageEngine? = nil
    ) {
        self.predecessor = predecessor
        self.make = make
        self.environment = environment
        self.epoch = epoch
        self.tap = runtime.logTap
        self.runtime = runtime
        self.namespace = namespace
        self.id = id
        self.inner = Mutex(Inner(mailbox: Mailbox(limits: configuration.mailbox)))
        self.clock = configuration.clock
        self.blockTimeout = configuration.blockConcurrencyTimeout
        self.runtimeLogger = logger
        let box = WeakActivation()
        self.engine = StorageEngine(
            database: runtime.database, family: family, objectID: id.bytes, committer: runtime.committer,
            hooks: StorageHooks(
                // The hooks capture the box alone, so that they cost no allocation per object.
                writeCheck: { try box.checkWrite() },
                beforeDatabaseRead: runtime.faults.readHook,
                flushFailed: { error in box.value?.flushFailed(error) },
                cacheCapacity: configuration.cacheEntriesPerObject,
                alarmNamespaceID: namespace.id,
                handlesAlarms: handlesAlarms,
                alarmChanged: { [weak runtime, namespaceID = namespace.id, id] time in
                    runtime?.alarmChanged(namespaceID: namespaceID, id: id, to: time)
                },
                metrics: storageMetrics,
                firstFlushName: ObjectNames.pendingName(
                    id, namespace: namespace, database: runtime.database, logger: logger)))
        box.value = self
        let storage = DurableObjectStorage(engine: engine, control: self)
        self.state = DurableObjectState(id: id, storage: storage, executor: executor, control: self)
        executor.setObserver(self)
    }

    /// Throws `instanceInactive` unless this activation may write: it is not retired, and its slot is still served
    /// at the epoch it was made under (the fence: an activation of an older placement epoch may not write).
    func checkWrite() throws {
        if isRetired { throw DurableObjectError.instanceInactive }
        guard let runtime, runtime.placement.servingEpoch(of: id) == epoch else {
            throw DurableObjectError.instanceInactive
        }
        try runtime.faults.checkWrite(namespaceID: namespace.id, id: id)
    }

    /// The runtime's logger with the object as metadata, for the runtime's lines about this object (made when
    /// something is logged, so that a resident object holds no logger of its own).
    private var logger: Logger {
        var logger = runtimeLogger
        logger[metadataKey: "object"] = "\(namespace.className):\(id.hexString.prefix(16))"
        return logger
    }

    /// The object's own logger: ``logger``, also feeding live tails (`durable tail`).
    func makeObjectLogger() -> Logger {
        var objectLogger = logger
        objectLogger.handler = TailingLogHandler(
            wrapped: objectLogger.handler, tap: tap, namespaceID: namespace.id, className: namespace.className,
            objectID: id)
        return objectLogger
    }

    /// The object's socket table, loaded from the node's database.
    func makeSockets() -> ObjectSockets {
        ObjectSockets(
            namespaceID: namespace.id, id: id, database: engine.database, engine: engine,
            hub: { [weak runtime] in runtime?.webSocketHub }, logger: logger)
    }

    // MARK: Start-up

    /// Creates the instance and runs the `blockConcurrencyWhile` bodies its initializer scheduled; then opens the
    /// input gate. A failure resets the object and fails the queued events with the error.
    private func start() async {
        await predecessor?.waitUntilSettled()
        let object = make(state, environment)
        inner.withLock { $0.phase = .ready(object) }
        while let block = inner.withLock({ $0.startupBlocks.isEmpty ? nil : $0.startupBlocks.removeFirst() }) {
            do {
                try await withTimeLimit(blockTimeout, isolation: nil, on: executor, block)
            } catch {
                let reported = error is TimeLimitExceeded ? DurableObjectError.blockConcurrencyTimedOut : error
                logger.error("start-up of the object failed; resetting it: \(reported)")
                // The events waiting for this start-up get its error; the next one starts a fresh instance.
                for pending in retire(.instanceInactive) { pending.item.resolve(.failure(reported)) }
                return
            }
        }
        openInputGate()
    }

    // MARK: Admission and delivery

    /// A queued event's place: its ticket and where its delivery lands.
    struct Ticket: Sendable {
        fileprivate var number: UInt64
        fileprivate var slot: DeliverySlot
    }

    /// Queues an event of `bytes` body bytes, checking the queue's bounds now; ``awaitDelivery(_:)`` then waits
    /// for its turn. Returns `nil` when the activation is retired (queue on a fresh one).
    ///
    /// - Throws: an overloaded error when a queue bound would be exceeded (the event never runs).
    func enqueue(bytes: Int, deadline: ContinuousClock.Instant? = nil) throws -> Ticket? {
        let slot = DeliverySlot()
        let admitted = try inner.withLock { inner -> (number: UInt64, deliveries: [Delivery])? in
            if case .retired = inner.phase { return nil }
            let number = try inner.mailbox.admit(slot, bytes: bytes, deadline: deadline, now: clock.now)
            if !inner.startLaunched {
                // Started by its first event, which is queued by now: if the start-up fails, that event gets the
                // error.
                inner.startLaunched = true
                return (number, [.launch])
            }
            return (number, nextDeliveries(&inner, executorIdle: !executor.isBusy))
        }
        guard let admitted else { return nil }
        perform(admitted.deliveries)
        return Ticket(number: admitted.number, slot: slot)
    }

    /// Waits until the queued event is delivered.
    ///
    /// - Throws: an overloaded error when it waited longer than the age bound, `DEADLINE_EXCEEDED` when its
    ///   deadline passed in the queue, `CancellationError` when the caller gave up (it then never runs).
    func awaitDelivery(_ ticket: Ticket) async throws -> Admission {
        try await withTaskCancellationHandler {
            try await ticket.slot.wait()
        } onCancel: {
            // A cancelled caller (its deadline passed, or it gave up) leaves the queue: it never runs.
            let removed = inner.withLock { $0.mailbox.withdraw(ticket.number) }
            removed?.item.resolve(.failure(CancellationError()))
        }
    }

    private enum Delivery {
        case deliver(DeliverySlot, any DurableObject)
        case expire(DeliverySlot)
        case deadlinePassed(DeliverySlot)
        case launch
    }

    /// The deliveries possible now (at most one event, plus expired ones dropped on the way).
    private func nextDeliveries(_ inner: inout Inner, executorIdle: Bool) -> [Delivery] {
        guard case .ready(let object) = inner.phase, inner.mailbox.canDeliver(executorIdle: executorIdle) else {
            return []
        }
        // A caller's deadline is real time, whatever clock the runtime's rules use.
        return inner.mailbox.takeNext(now: clock.now, realNow: .now).map { entry, verdict in
            switch verdict {
            case .deliver: .deliver(entry.item, object)
            case .expired: .expire(entry.item)
            case .deadlinePassed: .deadlinePassed(entry.item)
            }
        }
    }

    private func perform(_ deliveries: [Delivery]) {
        for delivery in deliveries {
            switch delivery {
            case .deliver(let slot, let object): slot.resolve(.success(.delivered(object)))
            case .expire(let slot): slot.resolve(.failure(DurableObjectError.queuedTooLong))
            case .deadlinePassed(let slot):
                slot.resolve(.failure(DurableObjectError(.deadlineExceeded, "Deadline exceeded.", retryable: true)))
            case .launch: Task { await self.start() }
            }
        }
    }

    private func deliverIfPossible(executorIdle: Bool) {
        let deliveries = inner.withLock { nextDeliveries(&$0, executorIdle: executorIdle) }
        perform(deliveries)
    }

    /// The delivered event's first turn is running.
    func eventStarted() {
        inner.withLock { $0.mailbox.eventStarted() }
    }

    /// What a delivered event produced, and the write it must wait for before anyone may see it.
    struct Outcome: Sendable {
        var result: Result<EventResult, any Error>
        var gate: UInt64
    }

    /// Runs a delivered event in `object`. Its outcome must then go through ``release(_:)``, which waits for the
    /// output gate.
    func run(_ event: ObjectEvent, in object: any DurableObject) async -> Outcome {
        let trigger = tap.isActive ? ObjectTrigger.of(event) : nil
        let (result, gate) = await ObjectContext.$current.withValue(engine) {
            await ObjectTrigger.$current.withValue(trigger) {
                await object.receive(event, activation: self)
            }
        }
        if case .failure(let error) = result {
            tap.publish(
                ObjectLogEvent(
                    time: Date(), namespaceID: namespace.id, className: namespace.className, objectID: id,
                    kind: .exception, level: .error, message: "\(error)", metadata: [:],
                    trigger: trigger ?? ObjectTrigger.of(event)))
        }
        return Outcome(result: result, gate: gate)
    }

    /// Waits until the writes the event's outcome depends on are durable (the output gate), then returns it.
    func release(_ outcome: Outcome) async throws -> EventResult {
        defer {
            inner.withLock { $0.mailbox.eventAnswered(now: clock.now) }
        }
        try await engine.waitUntilDurable(outcome.gate)
        return try outcome.result.get()
    }

    // MARK: TurnObserver

    func turnWillStart() {
        engine.turnWillStart()
    }

    func turnDidEnd(queueEmpty: Bool) {
        engine.turnDidEnd()
        if queueEmpty { deliverIfPossible(executorIdle: true) }
    }

    func executorDidBecomeIdle() {
        // An event admitted while the executor was finishing its last turn saw it busy and stayed queued.
        deliverIfPossible(executorIdle: !executor.isBusy)
    }

    // MARK: ActivationControl

    func closeInputGate() {
        inner.withLock { $0.mailbox.closeGate() }
    }

    func openInputGate() {
        inner.withLock { $0.mailbox.openGate() }
        deliverIfPossible(executorIdle: !executor.isBusy)
    }

    func runBlocking<T: Sendable>(
        isolation: isolated (any Actor)? = #isolation, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        do {
            return try await withTimeLimit(blockTimeout, isolation: isolation, on: executor, body)
        } catch let error as TimeLimitExceeded {
            _ = error
            logger.error("blockConcurrencyWhile() ran past its time limit; resetting the object")
            reset(.blockConcurrencyTimedOut)
            throw DurableObjectError.blockConcurrencyTimedOut
        } catch {
            logger.error("blockConcurrencyWhile() threw; resetting the object: \(error)")
            reset(.instanceInactive)
            throw error
        }
    }

    func scheduleBlocking(_ body: @escaping @Sendable () async throws -> Void) {
        let startingUp = inner.withLock { inner -> Bool in
            if case .starting = inner.phase {
                inner.startupBlocks.append(body)
                return true
            }
            inner.mailbox.closeGate()
            return false
        }
        guard !startingUp else { return }
        Task {
            _ = try? await runBlocking(isolation: nil, body)
            openInputGate()
        }
    }

    // MARK: Reset and eviction

    var isRetired: Bool {
        inner.withLock { inner in
            if case .retired = inner.phase { return true }
            return false
        }
    }

    /// Drops the instance: storage calls from it fail from now on, the runtime forgets it, and events still
    /// queued are admitted again on a fresh activation.
    func reset(_ error: DurableObjectError) {
        let queued = retire(error)
        for pending in queued { pending.item.resolve(.success(.retry)) }
    }

    /// The engine of this activation (a successor waits for its last flush).
    var storageEngine: StorageEngine { engine }

    private func retire(_ error: DurableObjectError) -> [Pending] {
        let queued = inner.withLock { inner -> [Pending]? in
            if case .retired = inner.phase { return nil }
            inner.phase = .retired(error)
            return inner.mailbox.removeAll()
        }
        guard let queued else { return [] }
        engine.invalidate(error)
        runtime?.forget(self)
        return queued
    }

    private func flushFailed(_ error: any Error) {
        logger.error("a storage write failed; resetting the object: \(error)")
        reset(.instanceInactive)
    }

    /// Retires the activation if it has been idle (no queued or running event, no input-gate hold, nothing to
    /// flush) since `idleSince`, or at all when `idleSince` is `nil`. Returns whether it did.
    ///
    /// The check and the retirement are one step under the activation's lock: an event that arrives meanwhile either
    /// counts (the object is not idle) or finds the activation retired and goes to a fresh one; none is left queued
    /// on a retired activation or delivered to an instance about to go.
    func retireIfIdle(idleSince: ContinuousClock.Instant?) -> Bool {
        let retired = inner.withLock { inner -> Bool in
            guard case .ready = inner.phase, inner.mailbox.isIdle else { return false }
            if let idleSince, let lastActivity = inner.mailbox.lastActivity, lastActivity > idleSince { return false }
            guard engine.isClean, !executor.isBusy, !(state.loadedSockets?.hasPendingFrames ?? false) else {
                return false
            }
            inner.phase = .retired(.instanceInactive)
            return true
        }
        guard retired else { return false }
        engine.invalidate(.instanceInactive)
        runtime?.forget(self)
        return true
    }

    /// Queued events (for tests and metrics).
    var queuedCount: Int { inner.withLock { $0.mailbox.queue.count } }

    /// When an event last arrived or was answered (`nil` before the first).
    var lastActivity: ContinuousClock.Instant? { inner.withLock { $0.mailbox.lastActivity } }
}

private final class WeakActivation: @unchecked Sendable {
    weak var value: Activation?

    /// Throws `instanceInactive` unless the activation may write now (``Activation/checkWrite()``).
    func checkWrite() throws {
        guard let activation = value else { throw DurableObjectError.instanceInactive }
        try activation.checkWrite()
    }
}

/// Thrown by ``withTimeLimit(_:_:)`` when the body ran too long.
struct TimeLimitExceeded: Error {}

/// Runs `body` in a task of its own and returns its result, or throws ``TimeLimitExceeded`` once `limit` has
/// passed (cancelling the body, without waiting for it to notice).
///
/// The body's task prefers `executor` (the object's), so that its code runs in the object's turns: the writes it
/// makes between two suspensions are one turn's, flushed as one atomic batch.
func withTimeLimit<T: Sendable>(
    _ limit: Duration, isolation: isolated (any Actor)? = #isolation, on executor: (any TaskExecutor)? = nil,
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let race = Mutex<CheckedContinuation<T, any Error>?>(nil)
    let tasks = Mutex<[Task<Void, Never>]>([])
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            race.withLock { $0 = continuation }
            let finish: @Sendable (Result<T, any Error>) -> Void = { result in
                guard
                    let winner = race.withLock({ slot -> CheckedContinuation<T, any Error>? in
                        defer { slot = nil }
                        return slot
                    })
                else { return }
                winner.resume(with: result)
                tasks.withLock { $0.forEach { $0.cancel() } }
            }
            let work = Task(executorPreference: executor) { finish(await Result(catching: body)) }
            let timer = Task {
                if (try? await Task.sleep(for: limit)) != nil { finish(.failure(TimeLimitExceeded())) }
            }
            tasks.withLock { $0 = [work, timer] }
            // The body may have finished before the tasks were stored: then nobody cancelled the timer yet.
            if race.withLock({ $0 == nil }) {
                work.cancel()
                timer.cancel()
            }
        }
    } onCancel: {
        tasks.withLock { $0.forEach { $0.cancel() } }
    }
}

extension Result where Failure == any Error {
    /// Captures the outcome of an async throwing closure.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

/// Where a queued event's delivery lands: resolved by whoever delivers (or refuses) it, waited for by its caller,
/// in either order.
final class DeliverySlot: Sendable {
    private enum State {
        case empty
        case waiting(CheckedContinuation<Activation.Admission, any Error>)
        case resolved(Result<Activation.Admission, any Error>)
        case done
    }

    private let state = Mutex(State.empty)

    /// Delivers the outcome; only the first one counts.
    func resolve(_ result: Result<Activation.Admission, any Error>) {
        let waiter = state.withLock { state -> CheckedContinuation<Activation.Admission, any Error>? in
            switch state {
            case .empty:
                state = .resolved(result)
                return nil
            case .waiting(let continuation):
                state = .done
                return continuation
            case .resolved, .done:
                return nil
            }
        }
        waiter?.resume(with: result)
    }

    /// Returns the outcome, waiting for it when it has not come yet.
    func wait() async throws -> Activation.Admission {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<Activation.Admission, any Error>? in
                switch state {
                case .empty:
                    state = .waiting(continuation)
                    return nil
                case .resolved(let result):
                    state = .done
                    return result
                case .waiting, .done:
                    return .failure(DurableObjectError(.internal, "An event's delivery was awaited twice."))
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
