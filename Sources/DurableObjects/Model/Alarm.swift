import Foundation

/// A durable object class that handles alarms (<doc:Semantics#Alarms>).
///
/// An object schedules at most one alarm at a time with `setAlarm(_:)` (on ``DurableObjectStorage``);
/// when it is due, the runtime delivers it to ``alarm(_:)`` like any other event (through the object's queue and
/// gates). Delivery is at least once: a handler that throws is retried with exponential backoff (2 s, doubling,
/// 6 retries), and an alarm whose node stops before the handler finished runs again when the node is back.
///
/// ```swift
/// actor Reminder: DurableObject, AlarmHandling {
///     nonisolated let state: DurableObjectState
///     init(state: DurableObjectState, env: Environment) { self.state = state }
///
///     func fetch(_ request: Request) async throws -> Response {
///         try await state.storage.setAlarm(Date().addingTimeInterval(60))
///         return Response("scheduled")
///     }
///
///     func alarm(_ info: AlarmInfo) async throws {
///         state.logger.info("the minute is up (retry \(info.retryCount))")
///     }
/// }
/// ```
public protocol AlarmHandling: DurableObject {
    /// Runs when the object's alarm is due. Inside it, `getAlarm()` returns `nil` unless the handler (or an event
    /// that interleaves with it) sets a new alarm. Throwing schedules a retry.
    func alarm(_ info: AlarmInfo) async throws
}

/// What the runtime tells an alarm handler about the delivery.
public struct AlarmInfo: Sendable, Hashable {
    /// How many earlier deliveries of this alarm failed (0 on the first delivery).
    public var retryCount: Int
    /// Whether an earlier delivery of this alarm failed.
    public var isRetry: Bool { retryCount > 0 }
    /// When the alarm was scheduled for.
    public var scheduledTime: Date

    /// Creates the information of a delivery.
    public init(retryCount: Int, scheduledTime: Date) {
        self.retryCount = retryCount
        self.scheduledTime = scheduledTime
    }
}

/// How failed alarm handlers are retried.
public struct AlarmRetryPolicy: Sendable, Hashable {
    /// The wait before the first retry; each later retry waits twice as long as the one before.
    public var initialDelay: Duration
    /// Retries after the first delivery; when the last one fails too, the alarm is dropped (and logged).
    public var maximumRetries: Int

    /// Creates a policy; the defaults are the production ones (2 s doubling, 6 retries).
    public init(initialDelay: Duration = .seconds(2), maximumRetries: Int = 6) {
        self.initialDelay = initialDelay
        self.maximumRetries = maximumRetries
    }

    /// The wait before retry number `retry` (1-based).
    public func delay(beforeRetry retry: Int) -> Duration {
        initialDelay * (1 << min(max(retry - 1, 0), 30))
    }
}

extension DurableObjectError {
    /// `setAlarm()` with a time at or before the Unix epoch.
    public static let alarmTimeNotPositive = DurableObjectError(
        .invalidArgument, "setAlarm() cannot be called with an alarm time <= 0")
    /// `setAlarm()` on a class that does not conform to ``AlarmHandling``.
    public static let noAlarmHandler = DurableObjectError(
        .invalidArgument, "Your Durable Object class must have an alarm() handler in order to call setAlarm()")
}

/// How an alarm is kept: in the node's metadata (the default column family), as the due time in milliseconds
/// since the Unix epoch (8 bytes, big-endian), under `alarm/<namespace id>/<object id hex>`.
enum AlarmRecord {
    static let prefix = NodeKeyspace.alarm

    static func key(namespaceID: String, objectIDHex: String) -> [UInt8] {
        Array("\(prefix)\(namespaceID)/\(objectIDHex)".utf8)
    }

    static func namespacePrefix(_ namespaceID: String) -> [UInt8] {
        Array("\(prefix)\(namespaceID)/".utf8)
    }

    static func encode(_ milliseconds: Int64) -> [UInt8] {
        withUnsafeBytes(of: milliseconds.bigEndian, Array.init)
    }

    static func decode(_ bytes: [UInt8]) -> Int64? {
        guard bytes.count == 8 else { return nil }
        return bytes.reduce(Int64(0)) { ($0 << 8) | Int64($1) }
    }
}
