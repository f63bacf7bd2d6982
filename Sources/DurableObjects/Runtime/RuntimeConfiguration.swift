import CoreMetrics
import Foundation

/// The bounds of each object's inbound queue (<doc:Semantics#Overload>). A request that would exceed one is refused at
/// once with an overloaded, retryable error and never runs.
public struct MailboxLimits: Sendable {
    /// Requests waiting to be delivered to one object.
    public var maxQueuedRequests: Int
    /// Bytes of request bodies waiting for one object.
    public var maxQueuedBytes: Int
    /// How long a request may wait; older ones are dropped when they reach the head of the queue.
    public var maxQueueAge: Duration

    /// Creates limits. The defaults let one object take bursts of a thousand requests and serve well over
    /// 1,000 requests a second.
    public init(maxQueuedRequests: Int = 1_000, maxQueuedBytes: Int = 32 << 20, maxQueueAge: Duration = .seconds(30)) {
        self.maxQueuedRequests = maxQueuedRequests
        self.maxQueuedBytes = maxQueuedBytes
        self.maxQueueAge = maxQueueAge
    }
}

/// Where a runtime reads the time for its rules about time: how long a request waited in an object's queue, how
/// long an object has been idle, and when an alarm is due.
///
/// Production runtimes use ``SystemRuntimeClock``; a test can give a clock it moves by hand (the testing module's
/// `ManualRuntimeClock`), so that a rule about time does not depend on how fast the machine runs the test.
public protocol RuntimeClock: Sendable {
    /// The current instant, on a monotonic scale (queue age, idleness).
    var now: ContinuousClock.Instant { get }
    /// The current wall-clock time in milliseconds since the Unix epoch (alarms are set in wall-clock time).
    var epochMilliseconds: Int64 { get }
    /// Suspends until ``epochMilliseconds`` reaches `deadline`.
    ///
    /// - Throws: `CancellationError` when the task is cancelled first.
    func sleep(untilEpochMilliseconds deadline: Int64) async throws
}

/// The system's clocks: the monotonic clock and the wall clock.
public struct SystemRuntimeClock: RuntimeClock {
    /// Creates the clock.
    public init() {}

    /// The current instant.
    public var now: ContinuousClock.Instant { .now }

    /// Milliseconds since the Unix epoch, now.
    public var epochMilliseconds: Int64 { Int64((Date().timeIntervalSince1970 * 1_000).rounded(.down)) }

    /// Sleeps until the wall clock reads `deadline`.
    public func sleep(untilEpochMilliseconds deadline: Int64) async throws {
        let wait = deadline - epochMilliseconds
        if wait > 0 { try await Task.sleep(for: .milliseconds(wait)) }
    }
}

/// How an ``ObjectRuntime`` runs objects.
public struct RuntimeConfiguration: Sendable {
    /// The bounds of each object's inbound queue.
    public var mailbox: MailboxLimits
    /// An object with no events, no open work and nothing to flush for this long is evicted from memory.
    public var idleTimeout: Duration
    /// The time limit of `blockConcurrencyWhile`.
    public var blockConcurrencyTimeout: Duration
    /// Clean values kept in memory per object.
    public var cacheEntriesPerObject: Int
    /// How failed alarm handlers are retried.
    public var alarmRetry: AlarmRetryPolicy
    /// Where the runtime reports its metrics (invocations, storage, queues, group commits); by default the
    /// process's bootstrapped swift-metrics factory. Give each runtime its own factory to read its figures apart.
    public var metricsFactory: any MetricsFactory
    /// The time the queue-age bound, idle eviction and alarms are measured by.
    public var clock: any RuntimeClock

    /// Creates a configuration; the defaults are the production ones (70 s idle eviction, 30 s limit for
    /// `blockConcurrencyWhile`).
    public init(
        mailbox: MailboxLimits = MailboxLimits(),
        idleTimeout: Duration = .seconds(70),
        blockConcurrencyTimeout: Duration = .seconds(30),
        cacheEntriesPerObject: Int = 1_000,
        alarmRetry: AlarmRetryPolicy = AlarmRetryPolicy(),
        metricsFactory: any MetricsFactory = MetricsSystem.factory,
        clock: any RuntimeClock = SystemRuntimeClock()
    ) {
        self.metricsFactory = metricsFactory
        self.clock = clock
        self.mailbox = mailbox
        self.idleTimeout = idleTimeout
        self.blockConcurrencyTimeout = blockConcurrencyTimeout
        self.cacheEntriesPerObject = cacheEntriesPerObject
        self.alarmRetry = alarmRetry
    }
}

/// A durable object class as the runtime knows it: its name and how to make an instance.
public struct DurableObjectClass: Sendable {
    /// The class name used in configuration (`class_name`).
    public let name: String
    let make: @Sendable (DurableObjectState, Environment) -> any DurableObject
    /// Whether the class conforms to ``AlarmHandling`` (only such classes may set alarms).
    public let handlesAlarms: Bool

    /// Describes `type` under `name` (by default the type's own name).
    public init<Object: DurableObject>(_ type: Object.Type, name: String? = nil) {
        self.name = name ?? String(describing: Object.self)
        self.make = { state, env in Object(state: state, env: env) }
        self.handlesAlarms = Object.self is any AlarmHandling.Type
    }
}

/// A namespace as the runtime holds it: its id, class and secret.
public struct NamespaceDefinition: Sendable, Hashable {
    /// The namespace id; it names the column family of its objects.
    public var id: String
    /// The class that implements its objects.
    public var className: String
    /// The secret of its ids.
    public var key: NamespaceKey

    /// Creates a definition.
    public init(id: String, className: String, key: NamespaceKey) {
        self.id = id
        self.className = className
        self.key = key
    }
}
