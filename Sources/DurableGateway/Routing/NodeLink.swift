import DurableClient
import DurableObjects
import DurableTracing
import DurableWire
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

/// How the gateway reaches one storage node's RPC methods: over TCP (``SocketNodeLink``, for a node in another
/// process) or by calling the node's handler directly (``InProcessNodeLink``, for a node in the gateway's process,
/// as in `durable dev`). Every method throws the node's status as an `RPCError`, so the gateway passes it on
/// unchanged.
public protocol NodeLink: Sendable {
    /// Calls `method` with a serialized request and returns the serialized reply as it came.
    func callSerialized(_ method: String, payload: [UInt8], timeout: Duration?) async throws -> [UInt8]

    /// Calls a streaming `method`: `onMessage` gets each streamed message in order (keep it quick); returns the
    /// final reply. Cancel the task to end it early.
    func callStreaming(_ method: String, payload: [UInt8], onMessage: @escaping @Sendable ([UInt8]) -> Void)
        async throws -> [UInt8]

    /// Starts a call without a Swift task when the link can (an open connection is at hand): `reply` is called
    /// exactly once, from any thread, and the returned function cancels the call. `nil` when the caller should use
    /// ``callSerialized(_:payload:timeout:)`` in a task instead. `metadata` goes with the call (trace context).
    func start(
        _ method: String, payload: [UInt8], metadata: [String: String], timeout: Duration?,
        reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void
    ) -> (@Sendable () -> Void)?

    /// Closes the link's connections; calls in flight fail.
    func close() async
}

extension NodeLink {
    /// Calls `method` with a protobuf request and decodes the protobuf reply.
    ///
    /// - Throws: `RPCError` with the node's status, or `INTERNAL` when the reply does not decode.
    func call<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, timeout: Duration? = nil
    ) async throws -> Response {
        let reply = try await callSerialized(method, payload: try request.serializedBytes(), timeout: timeout)
        do {
            return try Response(serializedBytes: reply)
        } catch {
            throw RPCError(.internal, "The node's reply to \(method) does not decode: \(error)")
        }
    }
}

/// A link to a node in another process: a small pool of authenticated RPC connections to its port.
struct SocketNodeLink: NodeLink {
    let client: DurableClient

    func callSerialized(_ method: String, payload: [UInt8], timeout: Duration?) async throws -> [UInt8] {
        do {
            return try await client.callSerialized(method, payload: payload, timeout: timeout)
        } catch let error as DurableObjectError {
            throw RPCError(error)
        }
    }

    func callStreaming(_ method: String, payload: [UInt8], onMessage: @escaping @Sendable ([UInt8]) -> Void)
        async throws -> [UInt8]
    {
        do {
            return try await client.callStreaming(method, payload: payload, onMessage: onMessage)
        } catch let error as DurableObjectError {
            throw RPCError(error)
        }
    }

    func start(
        _ method: String, payload: [UInt8], metadata: [String: String], timeout: Duration?,
        reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void
    ) -> (@Sendable () -> Void)? {
        guard let connection = client.openConnection() else { return nil }
        return connection.call(method, payload: payload, metadata: metadata, timeout: timeout, completion: reply)
    }

    func close() async {
        await client.close()
    }
}

/// A link to a node that runs in the gateway's process: each call goes straight to the node's RPC handler, with
/// no socket, framing or authentication between (the gateway is the node's cluster peer either way). Deadlines
/// and cancellation behave as over TCP: past its deadline a call answers `DEADLINE_EXCEEDED` at once and the
/// node's work is cancelled.
public struct InProcessNodeLink: NodeLink {
    private let handler: any RPCHandler

    /// A link that calls `handler` (a storage node's ``StorageNode/rpcHandler``).
    public init(handler: any RPCHandler) {
        self.handler = handler
    }

    /// Calls the node's handler with a serialized request; `timeout` is the call's deadline, as over TCP.
    public func callSerialized(_ method: String, payload: [UInt8], timeout: Duration?) async throws -> [UInt8] {
        try await call(method, payload: payload, timeout: timeout, stream: CallStream { _ in })
    }

    /// Calls a streaming method of the node's handler: each message reaches `onMessage` as the node sends it.
    public func callStreaming(
        _ method: String, payload: [UInt8], onMessage: @escaping @Sendable ([UInt8]) -> Void
    ) async throws -> [UInt8] {
        try await call(method, payload: payload, timeout: nil, stream: CallStream { onMessage($0) })
    }

    /// Always `nil`: a call in the same process needs no connection, and runs in the caller's task.
    public func start(
        _ method: String, payload: [UInt8], metadata: [String: String], timeout: Duration?,
        reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void
    ) -> (@Sendable () -> Void)? {
        nil
    }

    /// Nothing to close: the link holds no connection.
    public func close() async {}

    private func call(_ method: String, payload: [UInt8], timeout: Duration?, stream: CallStream) async throws
        -> [UInt8]
    {
        let incoming = IncomingCall(
            method: method, metadata: CallTracing.metadata(), payload: payload, deadline: timeout.map { .now + $0 },
            peer: "in-process",
            stream: stream, callerRole: .cluster)
        let handler = self.handler
        guard let timeout else { return try await Self.answer(handler, incoming).get() }
        // The deadline: the call runs in its own task, and whichever comes first (its answer, the timer, the
        // caller's cancellation) answers.
        let outcome = Rendezvous()
        let work = Task { outcome.finish(await Self.answer(handler, incoming)) }
        let timer = MultiThreadedEventLoopGroup.singleton.any().scheduleTask(
            in: .nanoseconds(Int64(clamping: timeout.nanoseconds))
        ) {
            if outcome.finish(.failure(.deadlineExceeded)) { work.cancel() }
        }
        defer { timer.cancel() }
        return try await withTaskCancellationHandler {
            try await outcome.wait()
        } onCancel: {
            if outcome.finish(.failure(.cancelled)) { work.cancel() }
        }
    }

    /// Runs the handler and turns what it throws into the status a TCP caller would get.
    private static func answer(_ handler: any RPCHandler, _ call: IncomingCall) async -> Result<[UInt8], RPCError> {
        do {
            return .success(try await handler.handle(call))
        } catch let error as RPCError {
            return .failure(error)
        } catch is CancellationError {
            return .failure(.cancelled)
        } catch {
            return .failure(RPCError(.internal, "\(error)"))
        }
    }
}

/// The first of several outcomes of one call, handed to the one task that waits for it.
private final class Rendezvous: Sendable {
    private struct State {
        var outcome: Result<[UInt8], RPCError>?
        var waiter: CheckedContinuation<[UInt8], any Error>?
    }
    private let state = Mutex(State())

    /// Records `outcome` unless one came first; returns whether it was the first.
    @discardableResult
    func finish(_ outcome: Result<[UInt8], RPCError>) -> Bool {
        let waiter = state.withLock { state -> CheckedContinuation<[UInt8], any Error>?? in
            guard state.outcome == nil else { return .none }
            state.outcome = outcome
            defer { state.waiter = nil }
            return .some(state.waiter)
        }
        guard let waiter else { return false }
        waiter?.resume(with: outcome.mapError { $0 as any Error })
        return true
    }

    /// Waits for the first outcome.
    func wait() async throws -> [UInt8] {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { state -> Result<[UInt8], RPCError>? in
                if let outcome = state.outcome { return outcome }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready.mapError { $0 as any Error }) }
        }
    }
}

extension Duration {
    fileprivate var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds.multipliedReportingOverflow(by: 1_000_000_000).overflow
            ? .max : seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}
