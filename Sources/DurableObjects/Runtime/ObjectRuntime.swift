import DurableStorage
import DurableTracing
import HeapModule
import Logging
import Synchronization

/// Runs durable objects in this process, on one RocksDB database: one activation per object id, one column
/// family per namespace, flushes through one group committer.
///
/// It is the engine behind a storage node, and behind the testing module's in-process runtime. As an
/// ``ObjectTransport`` it delivers requests to its objects directly.
///
/// Its public surface is what a node needs. The hooks tests need (evicting an object, running code or an alarm
/// inside it, injecting faults, looking at queues and the database) are the `Testing` SPI: the testing module and
/// the project's tests import them with `@_spi(Testing) import DurableObjects`.
public final class ObjectRuntime: ObjectTransport, Sendable {
    /// The database the objects' storage lives in.
    @_spi(Testing) public let database: Database
    /// The committer every flush goes through.
    public let committer: GroupCommitter
    /// How objects are run.
    public let configuration: RuntimeConfiguration
    /// Faults tests can inject.
    @_spi(Testing) public let faults = FaultInjector()
    /// The placement epochs of the slots this runtime serves.
    public let placement = PlacementEpochs()
    /// Objects' log lines and uncaught errors, for live tails.
    public let logTap = ObjectLogTap()

    private struct ActivationKey: Hashable {
        var namespaceID: String
        var id: [UInt8]
    }

    /// When the idle sweep looks at an activation next: at the earliest instant it could have been idle for the
    /// idle timeout. The sweep takes the due ones from a heap, so an idle node's sweep costs nothing per resident
    /// object.
    private struct IdleCheck: Comparable {
        var due: ContinuousClock.Instant
        var key: ActivationKey
        /// Which activation of `key` it is for (one that was replaced since is skipped).
        var activation: ObjectIdentifier

        static func < (lhs: IdleCheck, rhs: IdleCheck) -> Bool { lhs.due < rhs.due }
        static func == (lhs: IdleCheck, rhs: IdleCheck) -> Bool {
            lhs.due == rhs.due && lhs.key == rhs.key && lhs.activation == rhs.activation
        }
    }

    private struct Namespace {
        var definition: NamespaceDefinition
        var family: ColumnFamily
        var objectClass: DurableObjectClass
        var metrics: NamespaceMetrics
    }

    private struct State {
        var classes: [String: DurableObjectClass] = [:]
        var namespaces: [String: Namespace] = [:]
        var activations: [ActivationKey: Activation] = [:]
        /// One check per activation, soonest first.
        var idleChecks = Heap<IdleCheck>()
        /// The storage of retired instances whose last flush was still in flight; the sweep drops settled ones.
        var retiring: [ActivationKey: StorageEngine] = [:]
        var environment = Environment()
        var webSocketHub: (any WebSocketHub)?
        var sweeper: Task<Void, Never>?
        var stopped = false
    }

    private let state = Mutex(State())
    let logger: Logger
    private let metrics: RuntimeMetrics
    /// The alarms waiting for their time.
    let alarms: AlarmScheduler

    /// Column families of namespaces are named with this prefix.
    public static let namespaceFamilyPrefix = "ns:"

    /// Creates a runtime over an open database.
    public init(
        database: Database, committer: GroupCommitter? = nil,
        configuration: RuntimeConfiguration = RuntimeConfiguration(),
        logger: Logger = Logger(label: "durable.runtime")
    ) {
        self.database = database
        self.committer =
            committer
            ?? GroupCommitter(database: database, metrics: GroupCommitMetrics(factory: configuration.metricsFactory))
        self.configuration = configuration
        self.logger = logger
        self.metrics = RuntimeMetrics(factory: configuration.metricsFactory)
        let box = WeakRuntime()
        self.alarms = AlarmScheduler(clock: configuration.clock) { delivery in await box.value?.deliverAlarm(delivery) }
        box.value = self
    }

    // MARK: Classes, namespaces, environment

    /// Makes a class available to namespaces.
    public func register(_ objectClass: DurableObjectClass) {
        state.withLock { $0.classes[objectClass.name] = objectClass }
    }

    /// The names of the registered classes.
    public var classNames: [String] { state.withLock { $0.classes.keys.sorted() } }

    /// Serves the namespace `definition`, creating its column family when needed.
    ///
    /// - Throws: ``DurableObjectError/Code-swift.struct/notFound`` when its class is not registered; a storage
    ///   error when the column family cannot be created.
    public func defineNamespace(_ definition: NamespaceDefinition) throws {
        guard let objectClass = state.withLock({ $0.classes[definition.className] }) else {
            throw DurableObjectError(
                .notFound, "No Durable Object class named '\(definition.className)' is compiled into this app.")
        }
        let family = try database.ensureColumnFamily(named: Self.namespaceFamilyPrefix + definition.id)
        let namespaceMetrics = metrics.namespace(definition)
        let replaced = state.withLock { state -> [Activation] in
            let previous = state.namespaces[definition.id]?.definition
            state.namespaces[definition.id] = Namespace(
                definition: definition, family: family, objectClass: objectClass, metrics: namespaceMetrics)
            guard let previous, previous.className != definition.className || previous.key != definition.key else {
                return []
            }
            return state.activations.values.filter { $0.namespace.id == definition.id }
        }
        // The class behind the namespace changed (a rename or transfer): live instances run old code.
        for activation in replaced { activation.reset(.codeUpdated) }
        loadAlarms(ofNamespace: definition.id)
    }

    /// Stops serving the namespace `id` and deletes its objects: live instances are reset and the column family,
    /// with all its data, is dropped. Dropping a namespace that is not served does nothing.
    public func dropNamespace(_ id: String) throws {
        let activations = state.withLock { state -> [Activation] in
            state.namespaces[id] = nil
            return state.activations.values.filter { $0.namespace.id == id }
        }
        for activation in activations { activation.reset(.instanceInactive) }
        alarms.cancelNamespace(id)
        try deleteAlarmRecords(ofNamespace: id)
        if database.columnFamilyNames.contains(Self.namespaceFamilyPrefix + id) {
            try database.dropColumnFamily(named: Self.namespaceFamilyPrefix + id)
        }
        try ObjectNames.removeAll(namespaceID: id, database: database)
        try ObjectSockets.removeAll(namespaceID: id, database: database)
    }

    /// The ids of the namespaces served, sorted.
    public var namespaceIDs: [String] { state.withLock { $0.namespaces.keys.sorted() } }

    /// The definition of the namespace `id`, if served here.
    public func namespaceDefinition(_ id: String) -> NamespaceDefinition? {
        state.withLock { $0.namespaces[id]?.definition }
    }

    /// Sets the environment objects receive: `bindings` maps binding names to namespace ids served here (calls
    /// through them go to `transport`, by default this runtime).
    public func setEnvironment(
        bindings: [String: String], vars: [String: String] = [:], transport: (any ObjectTransport)? = nil
    ) throws {
        var namespaces: [String: DurableObjectNamespace] = [:]
        for (binding, namespaceID) in bindings {
            guard let definition = namespaceDefinition(namespaceID) else {
                throw DurableObjectError(.notFound, "Binding '\(binding)' names an unknown namespace '\(namespaceID)'.")
            }
            // Calls through a binding are the objects' subrequests: counted here, carried by `transport`.
            let metered = MeteredObjectTransport(base: transport ?? self, metrics: metrics.subrequests(to: definition))
            namespaces[binding] = DurableObjectNamespace(
                namespaceID: definition.id, className: definition.className, key: definition.key, transport: metered)
        }
        let environment = Environment(namespaces: namespaces, vars: vars)
        state.withLock { $0.environment = environment }
    }

    /// The environment objects receive.
    public var environment: Environment { state.withLock { $0.environment } }

    // MARK: WebSockets

    /// Where objects' socket frames go (the gateway that holds the client connections).
    var webSocketHub: (any WebSocketHub)? { state.withLock { $0.webSocketHub } }

    /// Sets where objects' socket frames go.
    public func setWebSocketHub(_ hub: (any WebSocketHub)?) {
        state.withLock { $0.webSocketHub = hub }
    }

    /// Delivers a socket event to the object that accepted the socket, as an event like any other (input gate,
    /// queue bounds). A message equal to the object's automatic-reply request is answered without waking it.
    ///
    /// - Returns: whether the object still knew the socket.
    /// - Throws: like ``invoke(namespaceID:id:request:)``.
    @discardableResult
    public func deliverWebSocketEvent(
        namespaceID: String, id: DurableObjectId, socketID: String, event: WebSocketEvent, epoch: UInt64? = nil
    ) async throws -> Bool {
        try checkEpoch(epoch, of: id)
        if case .message(.text(let text)) = event,
            let reply = ObjectSockets.storedAutoResponse(
                database: database, address: "\(namespaceID)/\(id.hexString)"),
            reply.request == text
        {
            try await webSocketHub?.deliver([WebSocketFrame(socketID: socketID, kind: .message(.text(reply.response)))])
            return true
        }
        guard
            case .value(let value) = try await deliver(
                .webSocket(socketID: socketID, event), namespaceID: namespaceID, id: id)
        else { return false }
        return value as? Bool ?? false
    }

    /// Closes the sockets held by gateway sessions that ended: every socket whose id names a session not in
    /// `liveSessions` is reported to its object as closed (``WebSocketSessions/lostConnection``), which removes
    /// its row. Sockets whose ids name no session are kept.
    ///
    /// - Returns: how many sockets were closed; those whose object could not take the event (overloaded, its
    ///   namespace gone) stay for the next sweep.
    @discardableResult
    public func closeSockets(ofEndedSessions liveSessions: Set<String>) async throws -> Int {
        var closed = 0
        for row in try ObjectSockets.allRows(database: database) {
            guard let session = WebSocketSessions.session(ofSocket: row.socketID), !liveSessions.contains(session),
                let definition = namespaceDefinition(row.namespaceID),
                let id = try? definition.key.id(fromString: row.idHex)
            else { continue }
            do {
                try await deliverWebSocketEvent(
                    namespaceID: row.namespaceID, id: id, socketID: row.socketID,
                    event: WebSocketSessions.lostConnection)
                closed += 1
            } catch {
                logger.warning(
                    "could not close a WebSocket of an ended gateway session",
                    metadata: ["socket": "\(row.socketID)", "error": "\(error)"])
            }
        }
        return closed
    }

    // MARK: Calls

    /// Delivers `request` to the object and returns its response once the object's writes made before the
    /// response are durable.
    ///
    /// - Throws: the object's own error; an overloaded error when its queue is full (the request never ran);
    ///   `Internal error in Durable Object storage write caused object to be reset.` when a flush failed;
    ///   ``DurableObjectError/Code-swift.struct/notFound`` for an unknown namespace; `Durable Object ID is not
    ///   valid for this namespace.` for an id of another namespace.
    public func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response {
        try await invoke(namespaceID: namespaceID, id: id, request: request, epoch: nil, deadline: nil)
    }

    /// Delivers `request` under a placement epoch and a deadline.
    ///
    /// - Parameters:
    ///   - namespaceID: the namespace of the object.
    ///   - id: the object.
    ///   - request: what to deliver to its `fetch`.
    ///   - epoch: the epoch the caller's router knows for the object's slot; `nil` skips the check.
    ///   - deadline: a request still queued when it passes is dropped with `DEADLINE_EXCEEDED`, never run.
    /// - Throws: besides the errors of ``invoke(namespaceID:id:request:)``, `FAILED_PRECONDITION` when `epoch` is
    ///   not the slot's current epoch.
    public func invoke(
        namespaceID: String, id: DurableObjectId, request: Request, epoch: UInt64?, deadline: ContinuousClock.Instant?
    ) async throws -> Response {
        try checkEpoch(epoch, of: id)
        let event = ObjectEvent.fetch(request)
        guard
            case .response(let response) = try await deliver(
                event, namespaceID: namespaceID, id: id, deadline: deadline)
        else { throw DurableObjectError(.internal, "the object returned no response") }
        return response
    }

    /// Refuses a call routed under an epoch that is not the slot's current one (`nil`: no check).
    private func checkEpoch(_ epoch: UInt64?, of id: DurableObjectId) throws {
        guard let epoch else { return }
        let current = placement.epoch(of: id)
        guard epoch == current else {
            throw DurableObjectError(
                .failedPrecondition,
                "Stale placement epoch \(epoch) for slot \(PlacementEpochs.slot(of: id)); the node is at epoch \(current).",
                retryable: true)
        }
    }

    /// Records new placement epochs and retires the activations of every slot whose epoch rose: their pending and
    /// later writes are refused, and the next call makes a fresh activation under the new epoch.
    ///
    /// The raise runs on the group committer's thread between two groups, so it is atomic with respect to the
    /// fence: a write checked before the raise is on disk when this returns, and one checked after it is refused.
    public func assignSlots(_ assignments: [(slot: UInt16, epoch: UInt64)]) async {
        await assignSlots(assignments.map { ($0.slot, $0.epoch, false) })
    }

    /// Records new placement epochs, and which slots are retired: handed to another node (a slot move), so that
    /// none of their objects runs here and none of their alarms fires until a later assignment gives them back.
    ///
    /// Retiring a slot resets its activations (their writes are fenced), and closes its objects' WebSockets with
    /// code 1012 (their rows are deleted: the clients reconnect to the new owner). A slot this node serves from now
    /// on (a slot pulled from another node, or one given back by an undone move) has its stored alarms scheduled.
    public func assignSlots(_ assignments: [(slot: UInt16, epoch: UInt64, retired: Bool)]) async {
        let changesBox = Mutex(PlacementEpochs.Changes())
        await committer.exclusively { [placement] in changesBox.withLock { $0 = placement.assign(assignments) } }
        let changes = changesBox.withLock { $0 }
        retireActivations(ofSlots: changes.raised.union(changes.retired))
        for slot in changes.retired.sorted() { await closeSockets(ofRetiredSlot: slot) }
        // A slot this node serves from now on (new to it, pulled from another node, or given back) may have
        // stored alarms: they are scheduled (an alarm already scheduled keeps its one delivery).
        let serving = changes.raised.filter { !placement.isRetired($0) }.union(changes.restored)
        for slot in serving.sorted() {
            do {
                try scheduleAlarms(ofSlot: slot)
            } catch {
                logger.error(
                    "could not schedule the alarms of a slot given back: \(error)", metadata: ["slot": "\(slot)"])
            }
        }
    }

    /// Records the placement epochs a node kept from before a restart (nothing runs yet, so nothing is fenced).
    public func loadSlots(_ assignments: [(slot: UInt16, epoch: UInt64, retired: Bool)]) {
        retireActivations(ofSlots: placement.assign(assignments).raised)
    }

    private func retireActivations(ofSlots raised: Set<UInt16>) {
        guard !raised.isEmpty else { return }
        let stale = state.withLock { state in
            state.activations.values.filter { raised.contains(PlacementEpochs.slot(of: $0.id)) }
        }
        for activation in stale { activation.reset(.instanceInactive) }
    }

    /// Runs `body` inside the object, as an event (gates and queue apply), and returns its value.
    @_spi(Testing) public func run<Object: DurableObject, Value: Sendable>(
        in namespaceID: String, id: DurableObjectId, as type: Object.Type,
        _ body: @escaping @Sendable (isolated Object) async throws -> Value
    ) async throws -> Value {
        let event = ObjectEvent.run { object in
            guard let typed = object as? Object else {
                throw DurableObjectError(
                    .invalidArgument, "The object is a \(Swift.type(of: object)), not a \(Object.self).")
            }
            return try await body(typed)
        }
        guard case .value(let value) = try await deliver(event, namespaceID: namespaceID, id: id),
            let typed = value as? Value
        else { throw DurableObjectError(.internal, "the object returned no value") }
        return typed
    }

    /// Delivers `event` and records it in the namespace's invocation metrics.
    func deliver(
        _ event: ObjectEvent, namespaceID: String, id: DurableObjectId, deadline: ContinuousClock.Instant? = nil
    ) async throws -> EventResult {
        let started = ContinuousClock.now
        var namespaceMetrics: NamespaceMetrics?
        do {
            let result = try await deliver(
                event, namespaceID: namespaceID, id: id, deadline: deadline, metrics: &namespaceMetrics)
            namespaceMetrics?.recordInvocation(.success(()), since: started)
            return result
        } catch {
            namespaceMetrics?.recordInvocation(.failure(error), since: started)
            throw error
        }
    }

    private func deliver(
        _ event: ObjectEvent, namespaceID: String, id: DurableObjectId, deadline: ContinuousClock.Instant?,
        metrics: inout NamespaceMetrics?
    ) async throws -> EventResult {
        if CallTracing.recordsThisCall {
            return try await tracedDeliver(
                event, namespaceID: namespaceID, id: id, deadline: deadline, metrics: &metrics)
        }
        while true {
            let (activation, namespaceMetrics) = try activation(namespaceID: namespaceID, id: id)
            metrics = namespaceMetrics
            // The call waits in the queue and runs its turns with the object's executor as its own, so that the end
            // of the previous event's turn starts this one on the same thread. The output gate is waited for
            // outside: its release then goes straight back to the caller's executor.
            // Queued (and the queue's bounds checked) here, before anything waits for the object's executor.
            guard let ticket = try activation.enqueue(bytes: event.bodyBytes, deadline: deadline) else { continue }
            let outcome = try await withTaskExecutorPreference(activation.executor) {
                () async throws -> Activation.Outcome? in
                switch try await activation.awaitDelivery(ticket) {
                case .retry: return nil
                case .delivered(let object): return await activation.run(event, in: object)
                }
            }
            if let outcome { return try await activation.release(outcome) }
        }
    }

    func activation(namespaceID: String, id: DurableObjectId) throws -> (Activation, NamespaceMetrics) {
        let key = ActivationKey(namespaceID: namespaceID, id: id.bytes)
        let (activation, created, metrics) = try state.withLock {
            state throws -> (Activation, Bool, NamespaceMetrics) in
            guard !state.stopped else {
                throw DurableObjectError(.unavailable, "The runtime is shutting down.", retryable: true)
            }
            guard let namespace = state.namespaces[namespaceID] else {
                throw DurableObjectError(.notFound, "No Durable Object namespace '\(namespaceID)' is served here.")
            }
            if let existing = state.activations[key] {
                return (existing, false, namespace.metrics)
            }
            try namespace.definition.key.verify(id.bytes)
            guard let epoch = placement.servingEpoch(of: id) else {
                throw DurableObjectError(
                    .unavailable,
                    "Slot \(PlacementEpochs.slot(of: id)) of this node is handed to another node; call again shortly.",
                    retryable: true)
            }
            // The instance this one replaces may still have a flush in flight: the new one waits for its outcome.
            let predecessor = state.retiring.removeValue(forKey: key).flatMap { $0.isFlushing ? $0 : nil }
            let activation = Activation(
                runtime: self, namespace: namespace.definition, id: id, epoch: epoch,
                family: namespace.family,
                configuration: configuration, make: namespace.objectClass.make,
                handlesAlarms: namespace.objectClass.handlesAlarms, environment: state.environment,
                storageMetrics: namespace.metrics.storage, logger: logger, predecessor: predecessor)
            state.activations[key] = activation
            state.idleChecks.insert(
                IdleCheck(
                    due: configuration.clock.now + configuration.idleTimeout, key: key,
                    activation: ObjectIdentifier(activation)))
            if state.sweeper == nil { state.sweeper = startSweeper() }
            return (activation, true, namespace.metrics)
        }
        if created {
            logger.debug("activating object", metadata: ["namespace": "\(namespaceID)", "id": "\(id)"])
        }
        return (activation, metrics)
    }

    /// The metrics of the namespace `id`, if served here.
    func namespaceMetrics(_ id: String) -> NamespaceMetrics? {
        state.withLock { $0.namespaces[id]?.metrics }
    }

    /// Whether ``shutdown()`` began.
    var isStopped: Bool { state.withLock { $0.stopped } }

    /// Called by an activation that retired itself (reset or evicted).
    func forget(_ activation: Activation) {
        let key = ActivationKey(namespaceID: activation.namespace.id, id: activation.id.bytes)
        let engine = activation.storageEngine
        state.withLock { state in
            guard state.activations[key] === activation else { return }
            state.activations[key] = nil
            if engine.isFlushing { state.retiring[key] = engine }
        }
    }

    // MARK: Eviction

    /// Evicts the object from memory if it is idle (nothing queued, running or unflushed). Storage stays; the next
    /// request runs the initializer again. Returns whether it was evicted.
    @discardableResult
    @_spi(Testing) public func evict(namespaceID: String, id: DurableObjectId) -> Bool {
        let activation = state.withLock { $0.activations[ActivationKey(namespaceID: namespaceID, id: id.bytes)] }
        let evicted = activation?.retireIfIdle(idleSince: nil) ?? false
        if evicted { metrics.evictions.increment() }
        return evicted
    }

    /// Whether the object has a live instance.
    @_spi(Testing) public func isActive(namespaceID: String, id: DurableObjectId) -> Bool {
        state.withLock { $0.activations[ActivationKey(namespaceID: namespaceID, id: id.bytes)] != nil }
    }

    /// How many objects have a live instance.
    public var activeCount: Int { state.withLock { $0.activations.count } }

    /// Events waiting in the object's queue.
    @_spi(Testing) public func queuedCount(namespaceID: String, id: DurableObjectId) -> Int {
        state.withLock { $0.activations[ActivationKey(namespaceID: namespaceID, id: id.bytes)] }?.queuedCount ?? 0
    }

    /// Sets the gauges of live objects and queued events from the runtime's state. Run it before each scrape: the
    /// gauges are read there, so the hot path keeps no running count.
    public func updateGauges() {
        let activations = state.withLock { Array($0.activations.values) }
        metrics.activeObjects.record(activations.count)
        metrics.queuedEvents.record(activations.reduce(0) { $0 + $1.queuedCount })
    }

    private func startSweeper() -> Task<Void, Never> {
        let timeout = configuration.idleTimeout
        let interval = min(timeout / 4, .seconds(1))
        return Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard let self else { return }
                let now = self.configuration.clock.now
                let cutoff = now - timeout
                let due = self.state.withLock { state -> [(IdleCheck, Activation)] in
                    state.retiring = state.retiring.filter { $0.value.isFlushing }
                    var due: [(IdleCheck, Activation)] = []
                    while let first = state.idleChecks.min, first.due <= now {
                        state.idleChecks.removeMin()
                        if let activation = state.activations[first.key],
                            ObjectIdentifier(activation) == first.activation
                        {
                            due.append((first, activation))
                        }
                    }
                    return due
                }
                var again: [IdleCheck] = []
                for (check, activation) in due {
                    if activation.retireIfIdle(idleSince: cutoff) {
                        self.metrics.evictions.increment()
                        self.logger.debug("evicted idle object", metadata: ["id": "\(activation.id)"])
                    } else {
                        // Busy since: look again once it could have been idle for the timeout.
                        var next = check
                        next.due = max((activation.lastActivity ?? now) + timeout, now)
                        again.append(next)
                    }
                }
                if !again.isEmpty {
                    self.state.withLock { state in
                        for check in again { state.idleChecks.insert(check) }
                    }
                }
            }
        }
    }

    /// An object of `slot` active here (`<namespace>/<id hex prefix>`), if any.
    func activeObject(inSlot slot: UInt16) -> String? {
        state.withLock { state in
            state.activations.keys.first { key in
                key.id.count == ObjectKeySpace.objectIDLength
                    && PlacementEpochs.slot(of: DurableObjectId(bytes: key.id, name: nil)) == slot
            }.map { "\($0.namespaceID)/\(DurableObjectId(bytes: $0.id, name: nil).hexString.prefix(8))…" }
        }
    }

    // MARK: Listing

    /// The ids of the objects of a namespace that have stored data, in byte order: those after `after` (all when
    /// `nil`), at most `limit` of them (all when `nil`). Reads the database only: no object is activated.
    public func objectIDs(
        inNamespace namespaceID: String, after: [UInt8]? = nil, limit: Int? = nil
    ) throws -> [DurableObjectId] {
        guard let family = state.withLock({ $0.namespaces[namespaceID]?.family }) else {
            throw DurableObjectError(.notFound, "No Durable Object namespace '\(namespaceID)' is served here.")
        }
        var ids: [DurableObjectId] = []
        var lower: [UInt8]? = after.map { KeyBytes.successor(ofPrefix: $0) ?? [] }
        if after != nil, lower == [] { return ids }
        while limit.map({ ids.count < $0 }) ?? true {
            var found: [UInt8]?
            try database.forEach(in: family, ScanOptions(lowerBound: lower, limit: 1)) { key, _ in
                found = ObjectKeySpace.objectID(ofStorageKey: key)
                return false
            }
            guard let id = found else { return ids }
            ids.append(DurableObjectId(bytes: id, name: nil))
            guard let next = KeyBytes.successor(ofPrefix: id) else { return ids }
            lower = next
        }
        return ids
    }

    // MARK: Shutdown

    /// Stops taking calls, waits until every object's writes are durable, and evicts every object.
    public func shutdown() async {
        let (activations, sweeper) = state.withLock { state in
            state.stopped = true
            state.idleChecks = Heap()
            defer { state.sweeper = nil }
            return (Array(state.activations.values), state.sweeper)
        }
        sweeper?.cancel()
        alarms.stop()
        for activation in activations {
            try? await activation.engine.waitUntilDurable(activation.engine.writeSequence)
            activation.reset(.instanceInactive)
        }
    }
}

/// Lets the alarm scheduler reach its runtime without keeping it alive.
private final class WeakRuntime: @unchecked Sendable {
    weak var value: ObjectRuntime?
}
