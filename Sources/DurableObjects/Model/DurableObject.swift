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
            }
        } catch {
            result = .failure(error)
        }
        return (result, state.storage.engine.gateSequence)
    }
}

/// Something delivered to an object.
enum ObjectEvent: Sendable {
    case fetch(Request)
    /// A closure run inside the object (the testing module's `runInDurableObject`).
    case run(@Sendable (isolated any DurableObject) async throws -> any Sendable)

    var bodyBytes: Int {
        if case .fetch(let request) = self { return request.body.count }
        return 0
    }
}

/// What an event produced.
enum EventResult: Sendable {
    case response(Response)
    case value(any Sendable)
}
