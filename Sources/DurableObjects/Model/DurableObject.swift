@_exported import HTTPTypes

/// A durable object class: a Swift actor with one live instance per id, private storage, and a `fetch` handler.
///
/// ```swift
/// actor Counter: DurableObject {
///     nonisolated let state: DurableObjectState
///     init(state: DurableObjectState, env: Environment) { self.state = state }
///
///     func fetch(_ request: Request) async throws -> Response {
///         let value = (try await state.storage.get("value", as: Int.self) ?? 0) + 1
///         try state.storage.put("value", value)
///         return Response("\(value)")
///     }
/// }
/// ```
///
/// The protocol gives the actor its executor (the activation's ``ObjectExecutor``): do not declare
/// `unownedExecutor` yourself. Handlers interleave only where they really suspend (awaiting another object, a
/// timer, …), like actor reentrancy; storage reads do not suspend.
public protocol DurableObject: Actor {
    /// The object's state: its id, storage, and concurrency controls. Store the value passed to `init`.
    nonisolated var state: DurableObjectState { get }

    /// Creates the instance. Runs when the object receives its first event after activation (first use, or
    /// after eviction or reset). Call ``DurableObjectState/blockConcurrencyWhile(_:)`` here to load state before
    /// any event is delivered.
    init(state: DurableObjectState, env: Environment)

    /// Handles a request sent to the object through a stub.
    func fetch(_ request: Request) async throws -> Response

    /// Handles a message a client sent on one of the object's sockets.
    func webSocketMessage(_ socket: WebSocket, _ message: WebSocketMessage) async throws

    /// Handles the close of one of the object's sockets (the socket is forgotten afterwards).
    func webSocketClose(_ socket: WebSocket, code: Int, reason: String, wasClean: Bool) async throws

    /// Handles an error on one of the object's sockets.
    func webSocketError(_ socket: WebSocket, _ error: String) async throws
}

extension DurableObject {
    /// Ignores the message (objects that accept sockets implement this).
    public func webSocketMessage(_ socket: WebSocket, _ message: WebSocketMessage) async throws {}

    /// Does nothing more than forget the socket.
    public func webSocketClose(_ socket: WebSocket, code: Int, reason: String, wasClean: Bool) async throws {}

    /// Logs the error.
    public func webSocketError(_ socket: WebSocket, _ error: String) async throws {
        state.logger.warning("WebSocket \(socket.id) failed: \(error)")
    }
}

extension DurableObject {
    /// The object's executor: every turn of the object runs there, so the runtime sees where turns end.
    public nonisolated var unownedExecutor: UnownedSerialExecutor {
        state.executor.asUnownedSerialExecutor()
    }

    /// Runs one event inside the object's isolation and reports the output-gate sequence at its end.
    func receive(_ event: ObjectEvent, activation: Activation) async -> (Result<EventResult, any Error>, UInt64) {
        activation.eventStarted()
        let result: Result<EventResult, any Error>
        do {
            switch event {
            case .fetch(let request):
                result = .success(.response(try await fetch(request)))
            case .run(let body):
                result = .success(.value(try await body(self)))
            case .webSocket(let socketID, let event):
                result = .success(.value(try await receive(event, on: socketID)))
            case .alarm(let info):
                result = .success(.value(try await runAlarm(info)))
            }
        } catch {
            result = .failure(error)
        }
        return (result, state.storage.engine.gateSequence)
    }
}

extension DurableObject {
    /// Hands a socket event to its handler; a close or error forgets the socket afterwards.
    func receive(_ event: WebSocketEvent, on socketID: String) async throws -> Bool {
        guard let socket = state.sockets.socket(socketID) else { return false }
        switch event {
        case .message(let message):
            try await webSocketMessage(socket, message)
        case .close(let code, let reason, let wasClean):
            defer { state.sockets.remove(socketID) }
            try await webSocketClose(socket, code: code, reason: reason, wasClean: wasClean)
        case .error(let error):
            defer { state.sockets.remove(socketID) }
            try await webSocketError(socket, error)
        }
        return true
    }
}

extension DurableObject {
    /// Runs the alarm handler; returns `false` when the class has none (the alarm is then dropped).
    func runAlarm(_ info: AlarmInfo) async throws -> Bool {
        guard let handler = self as? any AlarmHandling else { return false }
        let engine = state.storage.engine
        engine.alarmHandlerWillRun()
        do {
            try await handler.alarm(info)
        } catch {
            try? engine.alarmHandlerDidRun(succeeded: false)
            throw error
        }
        try engine.alarmHandlerDidRun(succeeded: true)
        return true
    }
}

/// Something delivered to an object.
enum ObjectEvent: Sendable {
    case fetch(Request)
    /// Something happened on one of the object's sockets.
    case webSocket(socketID: String, WebSocketEvent)
    /// The object's alarm is due.
    case alarm(AlarmInfo)
    /// A closure run inside the object (the testing module's `runInDurableObject`).
    case run(@Sendable (isolated any DurableObject) async throws -> any Sendable)

    var bodyBytes: Int {
        switch self {
        case .fetch(let request): request.body.count
        case .webSocket(_, .message(let message)): message.byteCount
        default: 0
        }
    }
}

/// What an event produced.
enum EventResult: Sendable {
    case response(Response)
    case value(any Sendable)
}
