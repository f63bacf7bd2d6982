import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import SwiftProtobuf
import Synchronization

/// A call as the server receives it.
public struct IncomingCall: Sendable {
    /// The full method name, e.g. `durable.v1.Objects/Invoke`.
    public var method: String
    /// The caller's metadata.
    public var metadata: [String: String]
    /// The serialized request message.
    public var payload: [UInt8]
    /// When the caller stops waiting; `nil` for no deadline.
    public var deadline: ContinuousClock.Instant?
    /// The peer's address, e.g. `127.0.0.1:53412`.
    public var peer: String
    /// Sends `StreamData` frames of this call to the caller before its reply (streaming methods use it).
    public var stream: CallStream
    /// The role the caller's connection proved (`nil` on a server that requires no keys); an in-process caller of
    /// the cluster says ``RPCRole/cluster``.
    public var callerRole: RPCRole?

    /// A call with the given parts (a server makes them from frames; an in-process caller, directly).
    public init(
        method: String, metadata: [String: String], payload: [UInt8], deadline: ContinuousClock.Instant?,
        peer: String, stream: CallStream, callerRole: RPCRole? = nil
    ) {
        self.callerRole = callerRole
        self.method = method
        self.metadata = metadata
        self.payload = payload
        self.deadline = deadline
        self.peer = peer
        self.stream = stream
    }
}

/// The stream of one call: messages the server sends to the caller before the call's reply, as `StreamData`
/// frames carrying the call's id, in order.
public final class CallStream: Sendable {
    private let sender: @Sendable ([UInt8]) async throws -> Void

    init(channel: any Channel, callID: UInt64) {
        sender = { payload in
            var frame = Durable_V1_Frame()
            frame.callID = callID
            frame.streamData = Durable_V1_StreamData.with { $0.payload = Data(payload) }
            try await channel.writeAndFlush(frame).get()
        }
    }

    /// A stream that hands each message to `send` (a caller in the same process, with no connection between).
    public init(send: @escaping @Sendable ([UInt8]) async throws -> Void) {
        sender = send
    }

    /// Sends one message and returns once it was written to the socket, so a caller that reads slowly slows the
    /// sender (which should then drop rather than queue without bound).
    ///
    /// - Throws: when the connection is closed.
    public func send(_ payload: [UInt8]) async throws {
        try await sender(payload)
    }
}

/// Serves calls: returns the serialized response message, or throws an ``RPCError`` (any other error becomes
/// `INTERNAL`). A call whose task is cancelled (the caller cancelled, or the deadline passed) gets no reply from it.
public protocol RPCHandler: Sendable {
    /// Handles one call.
    func handle(_ call: IncomingCall) async throws -> [UInt8]

    /// Starts a call without a Swift task, when the handler can (a relay that only forwards the call elsewhere,
    /// for instance): arranges for `reply` to be called exactly once, from any thread, and returns a function
    /// that cancels the call. Returns `nil` to have ``handle(_:)`` run it in a task instead (the default).
    func start(_ call: IncomingCall, reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void)
        -> (@Sendable () -> Void)?
}

extension RPCHandler {
    /// Runs every call in a task.
    public func start(_ call: IncomingCall, reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void)
        -> (@Sendable () -> Void)?
    {
        nil
    }
}

/// Serves the RPC protocol on a TCP port: many multiplexed calls per connection, deadlines, cancellation,
/// keep-alive pings and graceful shutdown (go-away: running calls finish, new ones are refused as retryable).
///
/// A frame over the maximum size or one that does not decode closes that connection, after a go-away that
/// names the problem; the server keeps serving everyone else.
///
/// As a swift-service-lifecycle `Service`, ``run()`` serves until graceful shutdown is requested, then drains.
public final class RPCServer: Service, Sendable {
    /// The address to listen on.
    public let host: String
    private let requestedPort: Int
    private let handler: any RPCHandler
    private let maximumFrameSize: Int
    private let frameTimeout: Duration
    private let access: RPCAccessControl?
    /// The certificate it serves TLS with; `nil` serves plaintext.
    public let tls: RPCServerTLS?
    private let logger: Logger
    private let group: any EventLoopGroup
    /// How long ``run()`` lets running calls finish once graceful shutdown is requested.
    public let shutdownGracePeriod: Duration

    private struct State {
        var channel: (any Channel)?
        var connections: [ObjectIdentifier: ServerConnection] = [:]
        var draining = false
    }
    private let state = Mutex(State())
    private let closed = Mutex<[CheckedContinuation<Void, Never>]?>([])
    /// Calls from the same process, through ``inProcessHandler``.
    private let inProcessCalls = RunningCalls()

    /// Creates a server; nothing listens until ``start()``.
    /// - Parameter frameTimeout: how long a connection may hold a started frame without finishing it; then it is
    ///   closed (after a go-away saying so), so that slow or stalled peers cannot pin buffers and connections.
    /// - Parameter access: who may call: the keys connections must prove and the roles allowed per method;
    ///   `nil` serves everyone.
    /// - Parameter shutdownGracePeriod: how long ``run()`` lets running calls finish at graceful shutdown.
    /// - Parameter tls: the certificate to serve TLS with; then plaintext peers are refused (with a go-away that
    ///   says so). `nil` serves plaintext, and refuses peers that start a TLS handshake.
    public init(
        host: String, port: Int, handler: any RPCHandler, maximumFrameSize: Int = defaultMaximumFrameSize,
        frameTimeout: Duration = .seconds(30), access: RPCAccessControl? = nil, tls: RPCServerTLS? = nil,
        logger: Logger = Logger(label: "durable.rpc"),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        shutdownGracePeriod: Duration = .seconds(10)
    ) {
        self.shutdownGracePeriod = shutdownGracePeriod
        self.host = host
        self.requestedPort = port
        self.handler = handler
        self.maximumFrameSize = maximumFrameSize
        self.frameTimeout = frameTimeout
        self.access = access
        self.tls = tls
        self.logger = logger
        self.group = group
    }

    /// Binds the port and starts accepting connections. Returns the bound port (useful with port 0).
    @discardableResult
    public func start() async throws -> Int {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    let connection = ServerConnection(server: self, channel: channel)
                    let progress = FrameProgress()
                    try channel.pipeline.syncOperations.addHandlers([
                        TLSDetector(tls: tls, logger: logger),
                        ByteToMessageHandler(FrameDecoder(maximumFrameSize: maximumFrameSize, progress: progress)),
                        MessageToByteHandler(FrameEncoder()),
                        ServerConnectionHandler(
                            connection: connection, handler: handler, logger: logger, progress: progress,
                            frameTimeout: frameTimeout, access: access),
                    ])
                    register(connection)
                }
            }
            .bind(host: host, port: requestedPort).get()
        state.withLock { $0.channel = channel }
        let port = channel.localAddress?.port ?? requestedPort
        logger.info(
            "RPC server listening",
            metadata: [
                "address": "\(host):\(port)",
                "tls": "\(tls.map { "on, client certificates \($0.clientCertificates.rawValue)" } ?? "off")",
            ])
        return port
    }

    /// Serves (starting unless ``start()`` already did) until graceful shutdown is requested or the task is
    /// cancelled, then shuts down, letting running calls finish for up to ``shutdownGracePeriod``.
    public func run() async throws {
        if port == nil { try await start() }
        try? await gracefulShutdown()
        await shutdown(gracePeriod: shutdownGracePeriod)
    }

    /// The bound port, once started.
    public var port: Int? { state.withLock { $0.channel?.localAddress?.port } }

    /// Waits until the server has shut down.
    public func waitUntilClosed() async {
        await withCheckedContinuation { continuation in
            let alreadyClosed = closed.withLock { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters!.append(continuation)
                return false
            }
            if alreadyClosed { continuation.resume() }
        }
    }

    /// Stops accepting connections, tells every client to go away, lets running calls finish for up to
    /// `gracePeriod`, then closes every connection.
    public func shutdown(gracePeriod: Duration = .seconds(10)) async {
        let (channel, connections) = state.withLock { state in
            state.draining = true
            return (state.channel, Array(state.connections.values))
        }
        try? await channel?.close()
        for connection in connections { connection.startDraining(reason: "server shutting down") }
        // Running calls may finish within the grace period: wait for the last one, or for the period's end.
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [inProcessCalls] in
                for connection in connections { await connection.waitUntilIdle() }
                await inProcessCalls.waitUntilIdle()
            }
            group.addTask { try? await Task.sleep(for: gracePeriod) }
            await group.next()
            group.cancelAll()
        }
        for connection in connections {
            // Replies written but not yet flushed leave before the connection closes.
            connection.channel.flush()
            try? await connection.channel.close()
        }
        let waiters = closed.withLock { waiters -> [CheckedContinuation<Void, Never>] in
            defer { waiters = nil }
            return waiters ?? []
        }
        for waiter in waiters { waiter.resume() }
        logger.info("RPC server stopped")
    }

    /// Open connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// The server's handler for callers in the same process, which need no socket: its calls skip framing and
    /// authentication, but are refused like a connection's once the server shuts down (`UNAVAILABLE`, retryable),
    /// and a shutdown waits for those running, as for any call.
    public var inProcessHandler: any RPCHandler { InProcessHandler(server: self) }

    private struct InProcessHandler: RPCHandler {
        let server: RPCServer

        func handle(_ call: IncomingCall) async throws -> [UInt8] {
            try server.startInProcessCall()
            defer { server.inProcessCalls.callEnded() }
            return try await server.handler.handle(call)
        }
    }

    /// Counts a call from the same process as running, unless the server shuts down.
    private func startInProcessCall() throws {
        try state.withLock { state in
            guard !state.draining else {
                throw RPCError.unavailable("The server is shutting down; call again on another connection.")
            }
            inProcessCalls.callStarted()
        }
    }

    private func register(_ connection: ServerConnection) {
        let draining = state.withLock { state -> Bool in
            state.connections[ObjectIdentifier(connection)] = connection
            return state.draining
        }
        if draining { connection.startDraining(reason: "server shutting down") }
        connection.channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLock { $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
        }
    }
}

/// The calls running somewhere (on one connection, or in-process), and who waits for there to be none.
final class RunningCalls: Sendable {
    private let running = Mutex<(count: Int, idleWaiters: [UInt64: CheckedContinuation<Void, Never>])>((0, [:]))
    private let nextWaiter = Atomic<UInt64>(0)

    func callStarted() { running.withLock { $0.count += 1 } }

    func callEnded() {
        let waiters = running.withLock { running -> [CheckedContinuation<Void, Never>] in
            running.count -= 1
            guard running.count == 0 else { return [] }
            defer { running.idleWaiters.removeAll() }
            return Array(running.idleWaiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once no call runs (at once when none does), or when the task is cancelled.
    func waitUntilIdle() async {
        let key = nextWaiter.add(1, ordering: .relaxed).newValue
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = running.withLock { running -> Bool in
                    if running.count == 0 || Task.isCancelled { return true }
                    running.idleWaiters[key] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            running.withLock { $0.idleWaiters.removeValue(forKey: key) }?.resume()
        }
    }
}

/// One accepted connection, as the server tracks it.
final class ServerConnection: Sendable {
    let channel: any Channel
    /// Calls running on the connection.
    private let running = RunningCalls()
    weak let server: RPCServer?

    init(server: RPCServer, channel: any Channel) {
        self.server = server
        self.channel = channel
    }

    func callStarted() { running.callStarted() }

    func callEnded() { running.callEnded() }

    /// Returns once no call runs on the connection (at once when none does), or when the task is cancelled.
    func waitUntilIdle() async { await running.waitUntilIdle() }

    func startDraining(reason: String) {
        channel.pipeline.fireUserInboundEventTriggered(DrainEvent(reason: reason))
    }
}

struct DrainEvent: Sendable {
    var reason: String
}

private let authMethodPrefix = "durable.v1.Auth/"

/// Runs the calls of one connection. Lives on the connection's event loop.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = Durable_V1_Frame
    typealias OutboundOut = Durable_V1_Frame

    private struct Running {
        /// Stops the call: cancels its task, or tells a directly started call to stop.
        var cancel: @Sendable () -> Void
        var deadline: NIODeadline?
    }

    private let connection: ServerConnection
    private let handler: any RPCHandler
    private let logger: Logger
    private var calls: [UInt64: Running] = [:]
    private var highestCallID: UInt64 = 0
    private var draining = false
    private var flushScheduled = false
    /// The one deadline timer of the connection: armed for the earliest deadline of the running calls, and
    /// re-armed only for an earlier one (calls with the same timeout never need it).
    private var deadlineTimer: Scheduled<Void>?
    private var timerDeadline: NIODeadline?
    private var peer = "unknown"

    private let progress: FrameProgress
    private let frameTimeout: Duration
    private var frameWatch: RepeatedTask?

    /// Who may call; `nil` serves everyone.
    private let access: RPCAccessControl?
    /// The role the connection proved, once it has.
    private var role: RPCRole?
    /// The latest challenge's nonce, until a proof uses it.
    private var nonce: [UInt8]?
    /// Whether the proven role may call a method, as decided once per method name on this connection.
    private var allowedMethods: [String: Bool] = [:]
    private var openedAt = NIODeadline.now()

    init(
        connection: ServerConnection, handler: any RPCHandler, logger: Logger, progress: FrameProgress,
        frameTimeout: Duration, access: RPCAccessControl?
    ) {
        self.connection = connection
        self.handler = handler
        self.logger = logger
        self.progress = progress
        self.frameTimeout = frameTimeout
        self.access = access
    }

    func channelActive(context: ChannelHandlerContext) {
        peer = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
        logger.debug("connection opened", metadata: ["peer": "\(peer)"])
        openedAt = .now()
        watchFrames(context)
        context.fireChannelActive()
    }

    /// Checks a few times per timeout whether a started frame has waited too long, or the connection has not
    /// authenticated in time; if so, says why and closes.
    private func watchFrames(_ context: ChannelHandlerContext) {
        let timeout = TimeAmount(frameTimeout)
        let authenticationTimeout = access.map { TimeAmount($0.authenticationTimeout) }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let shortest = min(timeout, authenticationTimeout ?? timeout)
        let interval = TimeAmount.nanoseconds(max(1_000_000, shortest.nanoseconds / 4))
        frameWatch = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            let (this, context) = loopBound.value
            let now = NIODeadline.now()
            if let authenticationTimeout, this.role == nil, now - this.openedAt >= authenticationTimeout {
                task.cancel()
                this.logger.warning(
                    "closing a connection that did not authenticate in time", metadata: ["peer": "\(this.peer)"])
                this.goAwayAndClose(
                    reason: "not authenticated within \(this.access!.authenticationTimeout): the connection is closed",
                    context)
                return
            }
            guard let since = this.progress.partialSince, now - since >= timeout else { return }
            task.cancel()
            this.logger.warning(
                "closing a connection whose frame stalled", metadata: ["peer": "\(this.peer)"])
            this.goAwayAndClose(
                reason: "frame incomplete after \(this.frameTimeout): the connection is closed", context)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.kind {
        case .call(let call):
            start(call, id: frame.callID, context: context)
        case .cancel:
            if let running = calls.removeValue(forKey: frame.callID) {
                running.cancel()
                // The call is over for the server too: a graceful shutdown must not wait for it.
                connection.callEnded()
            }
        case .ping(let ping):
            var pong = Durable_V1_Frame()
            pong.pong = Durable_V1_Pong.with { $0.nonce = ping.nonce }
            context.writeAndFlush(wrapOutboundOut(pong), promise: nil)
        case .goAway:
            draining = true
        case .pong, .reply, .streamData, .none:
            break
        }
    }

    private func start(_ call: Durable_V1_Call, id: UInt64, context: ChannelHandlerContext) {
        // A reply must name one call: a call without an id, or with the id of a call still running, breaks the
        // protocol, and the connection goes (a reply on that id would be ambiguous).
        guard id != 0 else {
            goAwayAndClose(reason: "call id 0 is reserved: number calls from 1", context)
            return
        }
        guard calls[id] == nil else {
            goAwayAndClose(reason: "call id \(id) is already in use by a call in flight on this connection", context)
            return
        }
        highestCallID = max(highestCallID, id)
        if call.method.hasPrefix(authMethodPrefix) {
            answerAuthentication(call, id: id, context: context)
            return
        }
        if let access {
            guard let role else {
                reply(id, .failure(.unauthenticated(call.method)), context)
                return
            }
            let allowed: Bool
            if let known = allowedMethods[call.method] {
                allowed = known
            } else {
                allowed = access.roles(call.method).contains(role)
                if allowedMethods.count < 1_000 { allowedMethods[call.method] = allowed }
            }
            guard allowed else {
                let needed = RPCRole.allCases.filter { access.roles(call.method).contains($0) }.map(\.keyName)
                let message =
                    needed.isEmpty
                    ? "\(call.method) cannot be called on this server."
                    : "\(call.method) needs the \(needed.joined(separator: " or ")); this connection proved the "
                        + "\(role.keyName)."
                reply(id, .failure(RPCError(.permissionDenied, message)), context)
                return
            }
        }
        guard !draining else {
            reply(id, .failure(.unavailable("The server is shutting down; call again on another connection.")), context)
            return
        }
        let deadline: ContinuousClock.Instant? =
            call.timeoutMicros > 0 ? .now + .microseconds(Int64(clamping: call.timeoutMicros)) : nil
        let incoming = IncomingCall(
            method: call.method, metadata: call.metadata, payload: Array(call.payload), deadline: deadline, peer: peer,
            stream: CallStream(channel: context.channel, callID: id), callerRole: role)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        let handler = self.handler
        connection.callStarted()
        let deadlineOnLoop =
            call.timeoutMicros > 0
            ? NIODeadline.now() + .microseconds(Int64(clamping: call.timeoutMicros)) : nil
        // The reply always comes through the event loop's queue, so it finds the call registered below even when
        // the handler answers at once.
        let direct = handler.start(incoming) { result in
            eventLoop.execute {
                let (this, context) = loopBound.value
                this.finish(id, result, context)
            }
        }
        if let direct {
            register(id, Running(cancel: direct, deadline: deadlineOnLoop), context: context)
            return
        }
        let task = Task {
            let result: Result<[UInt8], RPCError>
            do {
                result = .success(try await handler.handle(incoming))
            } catch let error as RPCError {
                result = .failure(error)
            } catch is CancellationError {
                result = .failure(.cancelled)
            } catch {
                result = .failure(RPCError(.internal, "\(error)"))
            }
            eventLoop.execute {
                let (this, context) = loopBound.value
                this.finish(id, result, context)
            }
        }
        register(id, Running(cancel: { task.cancel() }, deadline: deadlineOnLoop), context: context)
    }

    /// Answers `durable.v1.Auth/Challenge` (a fresh nonce) and `durable.v1.Auth/Authenticate` (checks the proof
    /// against every key; a wrong proof closes the connection). A server without access control answers both,
    /// so that clients holding a key can talk to it too.
    private func answerAuthentication(_ call: Durable_V1_Call, id: UInt64, context: ChannelHandlerContext) {
        switch call.method {
        case AuthMethods.challenge:
            var generator = SystemRandomNumberGenerator()
            let fresh = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
            nonce = fresh
            let response = Durable_V1_ChallengeResponse.with { $0.nonce = Data(fresh) }
            reply(id, message: response, context)
        case AuthMethods.authenticate:
            guard let access else {
                let response = Durable_V1_AuthenticateResponse.with { $0.role = "none" }
                reply(id, message: response, context)
                return
            }
            guard let request = try? Durable_V1_AuthenticateRequest(serializedBytes: Array(call.payload)) else {
                reply(id, .failure(RPCError(.invalidArgument, "The AuthenticateRequest does not decode.")), context)
                return
            }
            guard let challenge = nonce else {
                reply(
                    id,
                    .failure(
                        RPCError(
                            .failedPrecondition,
                            "No challenge to answer: call \(AuthMethods.challenge) first on this connection.")),
                    context)
                return
            }
            nonce = nil
            guard let proven = access.role(proving: Array(request.proof), for: challenge) else {
                logger.warning("refused a connection: wrong key", metadata: ["peer": "\(peer)"])
                reply(
                    id,
                    .failure(
                        RPCError(
                            .unauthenticated,
                            "The proof matches no key this server accepts (cluster secret, admin token or API "
                                + "token); the connection is closed.")),
                    context)
                goAwayAndClose(reason: "authentication failed", context)
                return
            }
            role = proven
            allowedMethods.removeAll()
            logger.debug("connection authenticated", metadata: ["peer": "\(peer)", "role": "\(proven)"])
            let response = Durable_V1_AuthenticateResponse.with { $0.role = proven.rawValue }
            reply(id, message: response, context)
        default:
            reply(id, .failure(RPCError(.unimplemented, "No method \(call.method).")), context)
        }
    }

    /// Replies with a protobuf message (an internal error if it cannot be serialized).
    private func reply(_ id: UInt64, message: some SwiftProtobuf.Message, _ context: ChannelHandlerContext) {
        reply(id, Result { try message.serializedBytes() }.mapError { RPCError(.internal, "\($0)") }, context)
    }

    private func register(_ id: UInt64, _ running: Running, context: ChannelHandlerContext) {
        calls[id] = running
        if let deadline = running.deadline, timerDeadline.map({ deadline < $0 }) ?? true {
            armDeadlineTimer(at: deadline, context: context)
        }
    }

    private func armDeadlineTimer(at deadline: NIODeadline, context: ChannelHandlerContext) {
        deadlineTimer?.cancel()
        timerDeadline = deadline
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadlineTimer = context.eventLoop.scheduleTask(deadline: deadline) {
            let (this, context) = loopBound.value
            this.expireCalls(context)
        }
    }

    /// Answers `DEADLINE_EXCEEDED` for every call whose deadline has passed, then re-arms for the earliest left.
    private func expireCalls(_ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        deadlineTimer = nil
        timerDeadline = nil
        let expired = calls.compactMap { id, running in running.deadline.map { $0 <= now } == true ? id : nil }
        for id in expired { finish(id, .failure(.deadlineExceeded), context) }
        if let next = calls.values.compactMap(\.deadline).min() { armDeadlineTimer(at: next, context: context) }
    }

    /// Sends the reply of a call that is still running; a call already answered (deadline) or cancelled is
    /// dropped silently.
    private func finish(_ id: UInt64, _ result: Result<[UInt8], RPCError>, _ context: ChannelHandlerContext) {
        guard let running = calls.removeValue(forKey: id) else { return }
        // A call answered by its handler is over; one answered for it (its deadline passed) must be stopped.
        if case .failure = result { running.cancel() }
        // The reply is queued (and its flush scheduled on this event loop) before the call counts as ended, so a
        // shutdown waiting for the last call closes the connection only after that flush.
        reply(id, result, context)
        connection.callEnded()
    }

    private func reply(_ id: UInt64, _ result: Result<[UInt8], RPCError>, _ context: ChannelHandlerContext) {
        var reply = Durable_V1_Reply()
        switch result {
        case .success(let payload):
            reply.status = Durable_V1_Status.with { $0.code = .ok }
            reply.payload = Data(payload)
        case .failure(let error):
            reply.status = error.status
        }
        var frame = Durable_V1_Frame()
        frame.callID = id
        frame.reply = reply
        context.write(wrapOutboundOut(frame), promise: nil)
        flushSoon(context)
    }

    /// Flushes once the event loop has run what is already queued on it, so that replies finishing together
    /// leave in one write rather than one system call each.
    private func flushSoon(_ context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (this, context) = loopBound.value
            this.flushScheduled = false
            context.flush()
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let drain = event as? DrainEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard !draining else { return }
        draining = true
        var frame = Durable_V1_Frame()
        frame.goAway = Durable_V1_GoAway.with {
            $0.lastCallID = highestCallID
            $0.reason = drain.reason
        }
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A bad frame: say why, then close this connection only.
        logger.warning("closing connection after a protocol error", metadata: ["peer": "\(peer)", "error": "\(error)"])
        goAwayAndClose(reason: "protocol error: \(error)", context)
    }

    private func goAwayAndClose(reason: String, _ context: ChannelHandlerContext) {
        var frame = Durable_V1_Frame()
        frame.goAway = Durable_V1_GoAway.with {
            $0.lastCallID = highestCallID
            $0.reason = reason
        }
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(frame)).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        frameWatch?.cancel()
        frameWatch = nil
        deadlineTimer?.cancel()
        deadlineTimer = nil
        for running in calls.values {
            running.cancel()
            connection.callEnded()
        }
        calls.removeAll()
        logger.debug("connection closed", metadata: ["peer": "\(peer)"])
        context.fireChannelInactive()
    }
}
