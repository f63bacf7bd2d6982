import DequeModule
import Foundation
import Logging
import Synchronization

/// One log line or uncaught error of an object, as a live tail sees it.
public struct ObjectLogEvent: Sendable {
    /// What the event is.
    public enum Kind: String, Sendable {
        /// A line the object logged through `state.logger`.
        case log
        /// An error a handler of the object threw (the caller got it).
        case exception
    }

    /// What the object was handling when the line was logged.
    public struct Trigger: Sendable, Hashable {
        /// `fetch`, `alarm`, `websocket` or `call`.
        public var event: String
        /// For a fetch: the HTTP method.
        public var method: String?
        /// For a fetch: the URL.
        public var url: String?
        /// For a fetch: the request's `x-request-id` header, when it has one.
        public var requestID: String?

        /// Describes an event.
        public init(event: String, method: String? = nil, url: String? = nil, requestID: String? = nil) {
            self.event = event
            self.method = method
            self.url = url
            self.requestID = requestID
        }
    }

    /// When it happened.
    public var time: Date
    /// The object's namespace.
    public var namespaceID: String
    /// The object's class.
    public var className: String
    /// The object's id.
    public var objectID: DurableObjectId
    /// A log line or an uncaught error.
    public var kind: Kind
    /// The level of the line (`error` for uncaught errors).
    public var level: Logger.Level
    /// The text.
    public var message: String
    /// The line's metadata (the object's logger metadata included).
    public var metadata: [String: String]
    /// What the object was handling, when known.
    public var trigger: Trigger?
}

/// Which objects a tail follows.
public struct ObjectLogFilter: Sendable, Hashable {
    /// Only this namespace; `nil`: every namespace.
    public var namespaceID: String?
    /// Only this object (with ``namespaceID``); `nil`: every object.
    public var objectID: [UInt8]?

    /// Creates a filter; with no arguments it lets everything through.
    public init(namespaceID: String? = nil, objectID: [UInt8]? = nil) {
        self.namespaceID = namespaceID
        self.objectID = objectID
    }

    func matches(_ event: ObjectLogEvent) -> Bool {
        if let namespaceID, namespaceID != event.namespaceID { return false }
        if let objectID, objectID != event.objectID.bytes { return false }
        return true
    }
}

/// Where objects' log lines and uncaught errors go while someone tails them.
///
/// With nobody tailing, publishing costs one atomic load and nothing is kept. Each subscriber has a bounded
/// buffer: when its reader falls behind, new events are dropped and counted, so a slow tail never slows an
/// object.
public final class ObjectLogTap: Sendable {
    private let subscriberCount = Atomic<Int>(0)
    private let subscribers = Mutex<[UInt64: ObjectLogSubscription]>([:])
    private let nextID = Atomic<UInt64>(0)

    /// Creates a tap with no subscribers.
    public init() {}

    /// Whether anyone tails now.
    public var isActive: Bool { subscriberCount.load(ordering: .relaxed) > 0 }

    /// Starts following the objects `filter` selects; at most `capacity` events wait unread (more are dropped
    /// and counted). Call ``ObjectLogSubscription/cancel()`` when done.
    public func subscribe(_ filter: ObjectLogFilter = ObjectLogFilter(), capacity: Int = 4_096) -> ObjectLogSubscription
    {
        let id = nextID.add(1, ordering: .relaxed).newValue
        let subscription = ObjectLogSubscription(filter: filter, capacity: capacity) { [weak self] in
            self?.unsubscribe(id)
        }
        subscribers.withLock { $0[id] = subscription }
        subscriberCount.add(1, ordering: .relaxed)
        return subscription
    }

    private func unsubscribe(_ id: UInt64) {
        if subscribers.withLock({ $0.removeValue(forKey: id) }) != nil {
            subscriberCount.subtract(1, ordering: .relaxed)
        }
    }

    /// Hands `event` to every subscriber whose filter it matches.
    func publish(_ event: @autoclosure () -> ObjectLogEvent) {
        guard isActive else { return }
        let event = event()
        let targets = subscribers.withLock { Array($0.values) }
        for subscriber in targets where subscriber.filter.matches(event) { subscriber.offer(event) }
    }
}

/// One tail's view of an ``ObjectLogTap``: a bounded buffer of events, read in batches.
public final class ObjectLogSubscription: Sendable {
    /// Which objects it follows.
    public let filter: ObjectLogFilter
    private let capacity: Int
    private let onCancel: @Sendable () -> Void

    private struct State {
        var buffer = Deque<ObjectLogEvent>()
        var dropped: UInt64 = 0
        var waiter: CheckedContinuation<Void, Never>?
        var cancelled = false
    }

    private let state = Mutex(State())

    init(filter: ObjectLogFilter, capacity: Int, onCancel: @escaping @Sendable () -> Void) {
        self.filter = filter
        self.capacity = max(1, capacity)
        self.onCancel = onCancel
    }

    func offer(_ event: ObjectLogEvent) {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.cancelled else { return nil }
            if state.buffer.count >= capacity {
                state.dropped += 1
            } else {
                state.buffer.append(event)
            }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
    }

    /// Waits for events and returns those buffered (at most `limit`), with how many were dropped since the last
    /// batch. Returns `nil` once cancelled (also when the waiting task is cancelled).
    public func next(limit: Int = 512) async -> (events: [ObjectLogEvent], dropped: UInt64)? {
        while true {
            let ready = state.withLock { state -> (events: [ObjectLogEvent], dropped: UInt64)?? in
                if state.cancelled { return .some(nil) }
                guard !state.buffer.isEmpty || state.dropped > 0 else { return .none }
                let count = min(limit, state.buffer.count)
                let events = Array(state.buffer.prefix(count))
                state.buffer.removeFirst(count)
                defer { state.dropped = 0 }
                return .some((events, state.dropped))
            }
            if let ready { return ready }
            await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let resumeNow = state.withLock { state -> Bool in
                        if state.cancelled || !state.buffer.isEmpty || state.dropped > 0 { return true }
                        state.waiter = continuation
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            } onCancel: {
                cancel()
            }
        }
    }

    /// Stops following: buffered events are discarded and ``next(limit:)`` returns `nil`.
    public func cancel() {
        let waiter = state.withLock { state -> CheckedContinuation<Void, Never>? in
            guard !state.cancelled else { return nil }
            state.cancelled = true
            state.buffer.removeAll()
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume()
        onCancel()
    }
}

/// What the object is handling in the current task, for the tail.
enum ObjectTrigger {
    @TaskLocal static var current: ObjectLogEvent.Trigger?

    static func of(_ event: ObjectEvent) -> ObjectLogEvent.Trigger {
        switch event {
        case .fetch(let request):
            ObjectLogEvent.Trigger(
                event: "fetch", method: request.method.rawValue, url: request.url,
                requestID: HTTPField.Name("x-request-id").flatMap { request.headers[$0] })
        case .alarm: ObjectLogEvent.Trigger(event: "alarm")
        case .webSocket: ObjectLogEvent.Trigger(event: "websocket")
        case .run: ObjectLogEvent.Trigger(event: "call")
        }
    }
}

/// The log handler of an object's `state.logger`: logs as the node's handler does, and also hands each line to
/// the tap while someone tails. While someone tails, every level reaches the tail, even below the node's level.
struct TailingLogHandler: LogHandler {
    var wrapped: any LogHandler
    let tap: ObjectLogTap
    let namespaceID: String
    let className: String
    let objectID: DurableObjectId

    var metadata: Logger.Metadata {
        get { wrapped.metadata }
        set { wrapped.metadata = newValue }
    }

    var logLevel: Logger.Level {
        get { tap.isActive ? .trace : wrapped.logLevel }
        set { wrapped.logLevel = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { wrapped[metadataKey: key] }
        set { wrapped[metadataKey: key] = newValue }
    }

    func log(event: LogEvent) {
        if event.level >= wrapped.logLevel { wrapped.log(event: event) }
        tap.publish(
            ObjectLogEvent(
                time: Date(), namespaceID: namespaceID, className: className, objectID: objectID, kind: .log,
                level: event.level, message: "\(event.message)",
                metadata: wrapped.metadata.merging(event.metadata ?? [:]) { $1 }.mapValues { "\($0)" },
                trigger: ObjectTrigger.current))
    }
}
