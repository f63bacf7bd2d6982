import CoreMetrics

/// Why an object's queue refused an event (<doc:Semantics#Overload>), as the `reason` label of
/// `durable_object_overload_rejections_total`.
public enum OverloadReason: Int, CaseIterable, Sendable {
    /// The queue held ``MailboxLimits/maxQueuedRequests`` events.
    case tooManyRequestsQueued
    /// The queue held ``MailboxLimits/maxQueuedBytes`` bytes of bodies.
    case tooMuchDataQueued
    /// The event waited longer than ``MailboxLimits/maxQueueAge``.
    case queuedTooLong

    /// The value of the `reason` label.
    public var label: String {
        switch self {
        case .tooManyRequestsQueued: "too_many_requests_queued"
        case .tooMuchDataQueued: "too_much_data_queued"
        case .queuedTooLong: "queued_too_long"
        }
    }

    /// The reason behind one of the runtime's overloaded errors; `nil` for any other error.
    init?(_ error: any Error) {
        guard let error = error as? DurableObjectError, error.overloaded else { return nil }
        switch error {
        case .tooManyRequestsQueued: self = .tooManyRequestsQueued
        case .tooMuchDataQueued: self = .tooMuchDataQueued
        case .queuedTooLong: self = .queuedTooLong
        default: return nil
        }
    }
}

/// The figures an ``ObjectRuntime`` reports through swift-metrics (the factory of its
/// ``RuntimeConfiguration/metricsFactory``): invocations, overload rejections, storage, subrequests, live objects
/// and queued events.
///
/// Per-namespace metric objects are made when the namespace is defined, and handed to its activations, so that a
/// call records into objects it already holds.
struct RuntimeMetrics: Sendable {
    /// The metric names, for dashboards and tests.
    enum Name {
        static let invocations = "durable_object_invocations_total"
        static let invocationDuration = "durable_object_invocation_duration_seconds"
        static let overloadRejections = "durable_object_overload_rejections_total"
        static let storageReads = "durable_storage_reads_total"
        static let storageWrites = "durable_storage_writes_total"
        static let storageWrittenBytes = "durable_storage_written_bytes_total"
        static let subrequests = "durable_subrequests_total"
        static let subrequestDuration = "durable_subrequest_duration_seconds"
        static let activeObjects = "durable_active_objects"
        static let queuedEvents = "durable_object_queued_events"
        static let evictions = "durable_object_evictions_total"
        static let alarms = "durable_object_alarms_total"
    }

    let factory: any MetricsFactory
    let activeObjects: Gauge
    let queuedEvents: Gauge
    let evictions: Counter

    init(factory: any MetricsFactory) {
        self.factory = factory
        activeObjects = Gauge(label: Name.activeObjects, dimensions: [], factory: factory)
        queuedEvents = Gauge(label: Name.queuedEvents, dimensions: [], factory: factory)
        evictions = Counter(label: Name.evictions, dimensions: [], factory: factory)
    }

    /// The metric objects of one namespace.
    func namespace(_ definition: NamespaceDefinition) -> NamespaceMetrics {
        NamespaceMetrics(dimensions: Self.dimensions(definition), factory: factory)
    }

    /// The count and latency of calls objects make to the namespace `target`.
    func subrequests(to target: NamespaceDefinition) -> CallMetrics {
        CallMetrics(
            calls: Name.subrequests, duration: Name.subrequestDuration, dimensions: Self.dimensions(target),
            factory: factory)
    }

    private static func dimensions(_ definition: NamespaceDefinition) -> [(String, String)] {
        [("namespace", definition.id), ("class", definition.className)]
    }
}

/// The metric objects of one namespace: its invocations, overload rejections and storage operations.
struct NamespaceMetrics: Sendable {
    let invocations: CallMetrics
    let overloadRejections: [Counter]
    let storage: StorageMetrics
    /// Alarm deliveries by ``AlarmOutcome``.
    let alarms: [Counter]

    init(dimensions: [(String, String)], factory: any MetricsFactory) {
        typealias Name = RuntimeMetrics.Name
        invocations = CallMetrics(
            calls: Name.invocations, duration: Name.invocationDuration, dimensions: dimensions, factory: factory)
        overloadRejections = OverloadReason.allCases.map {
            Counter(label: Name.overloadRejections, dimensions: dimensions + [("reason", $0.label)], factory: factory)
        }
        storage = StorageMetrics(dimensions: dimensions, factory: factory)
        alarms = AlarmOutcome.allCases.map {
            Counter(label: Name.alarms, dimensions: dimensions + [("outcome", $0.rawValue)], factory: factory)
        }
    }

    /// Counts one alarm delivery.
    func recordAlarm(_ outcome: AlarmOutcome) {
        alarms[AlarmOutcome.allCases.firstIndex(of: outcome)!].increment()
    }

    /// Records an event delivered (or refused) since `start`.
    func recordInvocation(_ result: Result<Void, any Error>, since start: ContinuousClock.Instant) {
        switch result {
        case .success:
            invocations.record(.ok, since: start)
        case .failure(let error):
            invocations.record(CallOutcome(error), since: start)
            if let reason = OverloadReason(error) { overloadRejections[reason.rawValue].increment() }
        }
    }
}

/// What objects of one namespace read and write: keys read (each key of a `get`, each entry a `list` returns),
/// keys written (each key of a `put` or `delete`, one per `deleteAll`) and the bytes of the keys and values
/// written.
struct StorageMetrics: Sendable {
    private let reads: Counter
    private let writes: Counter
    private let writtenBytes: Counter

    init(dimensions: [(String, String)], factory: any MetricsFactory) {
        reads = Counter(label: RuntimeMetrics.Name.storageReads, dimensions: dimensions, factory: factory)
        writes = Counter(label: RuntimeMetrics.Name.storageWrites, dimensions: dimensions, factory: factory)
        writtenBytes = Counter(label: RuntimeMetrics.Name.storageWrittenBytes, dimensions: dimensions, factory: factory)
    }

    /// Metrics that go nowhere.
    static let disabled = StorageMetrics(dimensions: [], factory: NOOPMetricsHandler.instance)

    func recordReads(_ keys: Int) {
        if keys > 0 { reads.increment(by: keys) }
    }

    func recordWrites(_ keys: Int, bytes: Int) {
        writes.increment(by: keys)
        if bytes > 0 { writtenBytes.increment(by: bytes) }
    }
}

/// How an alarm delivery ended, as the `outcome` label of `durable_object_alarms_total`.
enum AlarmOutcome: String, CaseIterable, Sendable {
    /// The handler returned.
    case ok
    /// The handler threw; a retry is scheduled.
    case retried
    /// The handler threw on its last retry, or the class has no handler: the alarm was dropped.
    case dropped
}
