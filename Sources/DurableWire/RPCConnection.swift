import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The client end of one RPC connection: many concurrent calls multiplexed on one TCP connection, replies in any
/// order, per-call deadlines, cancellation, and keep-alive pings.
///
/// Safe to share across tasks. When the server sends go-away or the connection drops, calls in flight fail with
/// a retryable `UNAVAILABLE` (unless the server promised to finish them) and ``isUsable`` turns false, so a pool
/// can open a new connection.
public final class RPCConnection: Sendable {
    private struct Pending {
        /// Hands the outcome to the caller (a continuation, or a callback); called exactly once.
        var complete: @Sendable (Result<[UInt8], RPCError>) -> Void
        var deadline: NIODeadline?
        /// Receives the call's `StreamData` messages (streaming calls only).
        var onStream: (@Sendable ([UInt8]) -> Void)? = nil
    }

    private struct State {
        var pending: [UInt64: Pending] = [:]
        var nextID: UInt64 = 1
        var closed: RPCError?
        var draining = false
        var lastPong = ContinuousClock.now
        /// When the deadline timer fires next, if armed. One timer serves every call: it is re-armed only for a
        /// deadline earlier than the armed one, which calls with the same timeout never are.
        var timerDeadline: NIODeadline?
    }

    /// The remote address, `host:port`.
    public let address: String
    let channel: any Channel
    private let state = Mutex(State())
    private let outbox = Mutex<[Durable_V1_Frame]>([])
    private let logger: Logger

    private init(address: String, channel: any Channel, logger: Logger) {
        self.address = address
        self.channel = channel
        self.logger = logger
    }

    /// Opens a connection to `host:port` and, given a key, authenticates it (auth.proto).
    ///
    /// - Parameter credentials: the key to prove to the server (its cluster secret, an admin token or an API
    ///   token); `nil` for servers that serve everyone.
    /// - Parameter tls: connect with TLS, verifying the server's certificate (and presenting a client certificate
    ///   when it holds one); `nil` for plaintext.
    /// - Throws: a retryable `UNAVAILABLE` ``RPCError`` naming the address when it cannot connect; the server's
    ///   `UNAUTHENTICATED` error when it refuses the key.
    public static func connect(
        host: String, port: Int, maximumFrameSize: Int = defaultMaximumFrameSize, keepAlive: Duration = .seconds(30),
        connectTimeout: Duration = .seconds(5), credentials: RPCKey? = nil, tls: RPCClientTLS? = nil,
        logger: Logger = Logger(label: "durable.rpc.client"),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> RPCConnection {
        let box = ConnectionBox()
        let channel: any Channel
        let address = "\(host):\(port)"
        let handshake = Mutex<EventLoopFuture<Void>?>(nil)
        do {
            channel = try await ClientBootstrap(group: group)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .connectTimeout(
                    .milliseconds(
                        Int64(connectTimeout.components.seconds * 1000)
                            + Int64(connectTimeout.components.attoseconds / 1_000_000_000_000_000))
                )
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            let promise = channel.eventLoop.makePromise(of: Void.self)
                            handshake.withLock { $0 = promise.futureResult }
                            let serverName = HostAddress.isIPAddress(host) ? nil : host
                            try channel.pipeline.syncOperations.addHandlers([
                                try NIOSSLClientHandler(context: tls.context, serverHostname: serverName),
                                TLSHandshakeWaiter(handshake: promise, address: address),
                            ])
                        }
                        try channel.pipeline.syncOperations.addHandlers([
                            ByteToMessageHandler(FrameDecoder(maximumFrameSize: maximumFrameSize)),
                            MessageToByteHandler(FrameEncoder()),
                            ClientConnectionHandler(box: box),
                        ])
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            throw RPCError.unavailable("Cannot connect to \(host):\(port): \(error)")
        }
        if let pending = handshake.withLock({ $0 }) {
            let timer = channel.eventLoop.scheduleTask(in: TimeAmount(connectTimeout)) {
                channel.close(promise: nil)
            }
            defer { timer.cancel() }
            do {
                try await pending.get()
            } catch let error as RPCError {
                try? await channel.close()
                throw error
            } catch {
                try? await channel.close()
                throw RPCError.unavailable("TLS handshake with \(address) failed: \(error).")
            }
        }
        let connection = RPCConnection(address: address, channel: channel, logger: logger)
        box.attach(connection)
        connection.scheduleKeepAlive(every: keepAlive)
        if let credentials {
            do {
                try await connection.authenticate(with: credentials, timeout: connectTimeout)
            } catch {
                await connection.close()
                throw error
            }
        }
        return connection
    }

    /// Proves `key` to the server: asks for a nonce, then sends its HMAC under the key.
    ///
    /// - Returns: the role the server granted.
    /// - Throws: the server's `UNAUTHENTICATED` error, with the key's kind named, when it refuses the key.
    @discardableResult
    public func authenticate(with key: RPCKey, timeout: Duration = .seconds(5)) async throws -> String {
        let challenge = try Durable_V1_ChallengeResponse(
            serializedBytes: try await call(
                AuthMethods.challenge, payload: try Durable_V1_ChallengeRequest().serializedBytes(), timeout: timeout))
        let request = Durable_V1_AuthenticateRequest.with { $0.proof = Data(key.proof(for: Array(challenge.nonce))) }
        do {
            let reply = try await call(
                AuthMethods.authenticate, payload: try request.serializedBytes(), timeout: timeout)
            return try Durable_V1_AuthenticateResponse(serializedBytes: reply).role
        } catch let error as RPCError where error.code == .unauthenticated {
            throw RPCError(.unauthenticated, "\(address) refused our \(key.role.keyName): \(error.message)")
        }
    }

    /// Whether new calls can go on this connection (it is open and the server has not said go-away).
    public var isUsable: Bool {
        state.withLock { $0.closed == nil && !$0.draining } && channel.isActive
    }

    /// Calls in flight.
    public var pendingCount: Int { state.withLock { $0.pending.count } }

    /// Calls `method` with a serialized request and returns the serialized response.
    ///
    /// - Parameter timeout: the deadline, sent to the server too; `nil` for none.
    /// - Throws: the server's ``RPCError``; `DEADLINE_EXCEEDED` when the timeout passes; `CANCELLED` when the task
    ///   is cancelled (the server is told to stop the call); a retryable `UNAVAILABLE` when the connection is gone.
    public func call(
        _ method: String, payload: [UInt8], metadata: [String: String] = [:], timeout: Duration? = nil
    ) async throws -> [UInt8] {
        let id = nextCallID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
                start(id, method, payload: payload, metadata: metadata, timeout: timeout) { result in
                    continuation.resume(with: result.mapError { $0 })
                }
            }
        } onCancel: {
            fail(id, with: .cancelled, sendCancel: true)
        }
    }

    /// Calls `method` without a Swift task: `completion` gets the serialized response or the error, exactly once,
    /// on whichever thread settles the call (usually the connection's event loop); it must be quick.
    ///
    /// - Returns: a function that cancels the call (the server is told to stop it; `completion` gets `CANCELLED`).
    @discardableResult
    public func call(
        _ method: String, payload: [UInt8], metadata: [String: String] = [:], timeout: Duration? = nil,
        completion: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void
    ) -> @Sendable () -> Void {
        let id = nextCallID()
        start(id, method, payload: payload, metadata: metadata, timeout: timeout, complete: completion)
        return { [weak self] in self?.fail(id, with: .cancelled, sendCancel: true) }
    }

    /// Calls a streaming `method`: `onMessage` gets each message the server streams (in order, on the connection's
    /// event loop: it must be quick), and the call returns the serialized final reply once the server ends it.
    /// Cancelling the task ends the call (the server is told to stop).
    ///
    /// - Throws: like ``call(_:payload:metadata:timeout:)``.
    public func callStreaming(
        _ method: String, payload: [UInt8], metadata: [String: String] = [:], timeout: Duration? = nil,
        onMessage: @escaping @Sendable ([UInt8]) -> Void
    ) async throws -> [UInt8] {
        let id = nextCallID()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<[UInt8], any Error>) in
                start(id, method, payload: payload, metadata: metadata, timeout: timeout, onStream: onMessage) {
                    result in
                    continuation.resume(with: result.mapError { $0 })
                }
            }
        } onCancel: {
            fail(id, with: .cancelled, sendCancel: true)
        }
    }

    private func nextCallID() -> UInt64 {
        state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
    }

    /// Registers call `id` and queues its frame; `complete` settles it.
    private func start(
        _ id: UInt64, _ method: String, payload: [UInt8], metadata: [String: String], timeout: Duration?,
        onStream: (@Sendable ([UInt8]) -> Void)? = nil,
        complete: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void
    ) {
        var call = Durable_V1_Call()
        call.method = method
        call.metadata = metadata
        call.payload = Data(payload)
        if let timeout {
            let micros = timeout.components.seconds * 1_000_000 + timeout.components.attoseconds / 1_000_000_000_000
            call.timeoutMicros = UInt64(max(1, micros))
        }
        var frame = Durable_V1_Frame()
        frame.callID = id
        frame.call = call
        let deadline = timeout.map { NIODeadline.now() + TimeAmount($0) }
        var arm: NIODeadline?
        let refused = state.withLock { state -> RPCError? in
            if let closed = state.closed { return closed }
            if state.draining {
                return .unavailable("The connection to \(address) is shutting down (go-away).")
            }
            state.pending[id] = Pending(complete: complete, deadline: deadline, onStream: onStream)
            if let deadline, state.timerDeadline.map({ deadline < $0 }) ?? true {
                state.timerDeadline = deadline
                arm = deadline
            }
            return nil
        }
        if let refused {
            complete(.failure(refused))
            return
        }
        if let arm { armDeadlineTimer(at: arm) }
        send(frame)
    }

    /// Fires at `deadline`: fails the calls whose deadline has passed (telling the server to stop them) and
    /// re-arms for the earliest deadline left.
    private func armDeadlineTimer(at deadline: NIODeadline) {
        channel.eventLoop.scheduleTask(deadline: deadline) { [weak self] in
            guard let self else { return }
            let now = NIODeadline.now()
            let (expired, next) = self.state.withLock { state -> ([UInt64], NIODeadline?) in
                // A later arming superseded this one: that timer will sweep.
                guard let armed = state.timerDeadline, armed <= now else { return ([], nil) }
                let expired = state.pending.compactMap { id, call in call.deadline.map { $0 <= now } == true ? id : nil
                }
                let next = state.pending.values.compactMap { $0.deadline.flatMap { $0 > now ? $0 : nil } }.min()
                state.timerDeadline = next
                return (expired, next)
            }
            for id in expired { self.fail(id, with: .deadlineExceeded, sendCancel: true) }
            if let next { self.armDeadlineTimer(at: next) }
        }
    }

    /// Queues `frame` for the connection. Frames queued while the event loop is busy leave together in one
    /// write and one flush, instead of one cross-thread hop and one system call each. A frame that cannot be
    /// written means the connection is closing: its calls then fail through ``closed(_:)``.
    private func send(_ frame: Durable_V1_Frame) {
        let first = outbox.withLock { outbox -> Bool in
            outbox.append(frame)
            return outbox.count == 1
        }
        guard first else { return }
        channel.eventLoop.execute { [self] in
            let frames = outbox.withLock { outbox -> [Durable_V1_Frame] in
                defer { outbox.removeAll(keepingCapacity: true) }
                return outbox
            }
            for frame in frames { channel.write(frame, promise: nil) }
            channel.flush()
        }
    }

    /// Resolves a call with an error; optionally tells the server to stop it.
    private func fail(_ id: UInt64, with error: RPCError, sendCancel: Bool) {
        guard let pending = state.withLock({ $0.pending.removeValue(forKey: id) }) else { return }
        pending.complete(.failure(error))
        if sendCancel {
            var frame = Durable_V1_Frame()
            frame.callID = id
            frame.cancel = Durable_V1_Cancel()
            send(frame)
        }
    }

    // MARK: Inbound (called by the handler on the event loop)

    func received(_ frame: Durable_V1_Frame) {
        switch frame.kind {
        case .reply(let reply):
            guard let pending = state.withLock({ $0.pending.removeValue(forKey: frame.callID) }) else { return }
            if reply.status.code == .ok {
                pending.complete(.success(Array(reply.payload)))
            } else {
                pending.complete(.failure(RPCError(status: reply.status)))
            }
        case .streamData(let data):
            state.withLock { $0.pending[frame.callID]?.onStream }?(Array(data.payload))
        case .pong:
            state.withLock { $0.lastPong = .now }
        case .ping(let ping):
            var pong = Durable_V1_Frame()
            pong.pong = Durable_V1_Pong.with { $0.nonce = ping.nonce }
            channel.writeAndFlush(pong, promise: nil)
        case .goAway(let goAway) where goAway.reason.hasPrefix(plaintextRefusedMarker):
            // A TLS port refused this plaintext connection: every call fails, saying so.
            logger.warning("server refused a plaintext connection", metadata: ["address": "\(address)"])
            closed(RPCError(.unavailable, "\(address) refused this connection: \(goAway.reason)."))
            channel.close(promise: nil)
        case .goAway(let goAway):
            logger.debug("server sent go-away", metadata: ["address": "\(address)", "reason": "\(goAway.reason)"])
            // Calls the server will not finish fail now; the others still get their replies.
            let abandoned = state.withLock { state -> [Pending] in
                state.draining = true
                let ids = state.pending.keys.filter { $0 > goAway.lastCallID }
                return ids.compactMap { state.pending.removeValue(forKey: $0) }
            }
            for pending in abandoned {
                pending.complete(
                    .failure(RPCError.unavailable("\(address) is going away (\(goAway.reason)); call again elsewhere."))
                )
            }
        case .call, .cancel, .none:
            break
        }
    }

    func closed(_ error: RPCError) {
        let pending = state.withLock { state -> [Pending] in
            if state.closed == nil { state.closed = error }
            defer { state.pending.removeAll() }
            return Array(state.pending.values)
        }
        for call in pending {
            call.complete(.failure(error))
        }
    }

    private func scheduleKeepAlive(every interval: Duration) {
        let every = TimeAmount(interval)
        channel.eventLoop.scheduleRepeatedTask(initialDelay: every, delay: every) {
            [weak self] task in
            guard let self, self.channel.isActive else {
                task.cancel()
                return
            }
            let silent = self.state.withLock { ContinuousClock.now - $0.lastPong } > interval * 3
            if silent {
                self.logger.warning("no pong from \(self.address); closing the connection")
                self.channel.close(promise: nil)
                task.cancel()
                return
            }
            var ping = Durable_V1_Frame()
            ping.ping = Durable_V1_Ping.with { $0.nonce = UInt64.random(in: 0...UInt64.max) }
            self.channel.writeAndFlush(ping, promise: nil)
        }
    }

    /// Closes the connection; calls in flight fail with `UNAVAILABLE`.
    public func close() async {
        try? await channel.close()
    }
}

/// Lets the pipeline reach the connection object, which is made after the channel.
/// The channel may close before the connection is attached (a server that drops the connection right after the
/// TLS handshake, say): the box keeps the error and hands it over on attach, so that no call waits on a dead
/// channel.
final class ConnectionBox: Sendable {
    private let state = Mutex<(connection: RPCConnection?, closedEarly: RPCError?)>((nil, nil))

    /// The connection, once attached.
    var connection: RPCConnection? { state.withLock { $0.connection } }

    /// Attaches the connection; if the channel closed already, the connection learns it now.
    func attach(_ connection: RPCConnection) {
        let early = state.withLock { state -> RPCError? in
            state.connection = connection
            return state.closedEarly
        }
        if let early { connection.closed(early) }
    }

    /// The channel closed: tells the connection, or keeps the error until it is attached.
    func channelClosed(_ error: RPCError) {
        let connection = state.withLock { state -> RPCConnection? in
            if state.connection == nil { state.closedEarly = error }
            return state.connection
        }
        connection?.closed(error)
    }
}

final class ClientConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Durable_V1_Frame

    private let box: ConnectionBox
    private var error: RPCError?

    init(box: ConnectionBox) { self.box = box }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        box.connection?.received(unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        self.error = .unavailable("Connection error: \(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        box.channelClosed(error ?? .unavailable("The connection was closed."))
        context.fireChannelInactive()
    }
}
