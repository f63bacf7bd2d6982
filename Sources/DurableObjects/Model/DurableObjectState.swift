import Logging
import Synchronization

/// What an object instance knows about itself: its id, its storage, and the controls over which events reach it.
public final class DurableObjectState: Sendable {
    /// The object's id (with its name, when it was addressed by name).
    public let id: DurableObjectId
    /// The object's private storage.
    public let storage: DurableObjectStorage
    /// A logger for the object's own messages, with the object id as metadata.
    public var logger: Logger {
        lazyParts.withLock { parts in
            if let logger = parts.logger { return logger }
            let logger = control.makeObjectLogger()
            parts.logger = logger
            return logger
        }
    }
    /// The serial executor every turn of the object runs on.
    public let executor: ObjectExecutor

    let control: any ActivationControl

    /// The logger and the socket table, made on first use: most objects never log and never accept a socket, and
    /// a node may hold a million of them resident.
    private struct LazyParts {
        var logger: Logger?
        var sockets: ObjectSockets?
    }
    private let lazyParts = Mutex(LazyParts())

    /// The object's WebSockets (loaded from the database on first use).
    var sockets: ObjectSockets {
        lazyParts.withLock { parts in
            if let sockets = parts.sockets { return sockets }
            let sockets = control.makeSockets()
            parts.sockets = sockets
            return sockets
        }
    }

    /// The socket table if it was loaded; `nil` when nothing has used the object's sockets yet.
    var loadedSockets: ObjectSockets? { lazyParts.withLock { $0.sockets } }

    init(id: DurableObjectId, storage: DurableObjectStorage, executor: ObjectExecutor, control: any ActivationControl) {
        self.id = id
        self.storage = storage
        self.executor = executor
        self.control = control
    }

    // MARK: WebSockets

    /// Accepts the WebSocket that `request` (an upgrade the gateway received) opens, with optional tags; answer
    /// the request with `Response(webSocket:)`. The client's connection stays at the gateway: the object may be
    /// evicted while it is open, and its messages arrive as `webSocketMessage` events.
    ///
    /// - Throws: when `request` is not a WebSocket upgrade from the gateway, or the object already holds
    ///   32,768 sockets.
    public func acceptWebSocket(_ request: Request, tags: [String] = []) throws -> WebSocket {
        guard request.isWebSocketUpgrade, let socketID = request.headers[WebSocketLimits.socketIDHeader] else {
            throw DurableObjectError(
                .invalidArgument,
                "acceptWebSocket() needs a WebSocket upgrade request (Upgrade: websocket) that came through the gateway."
            )
        }
        return try sockets.accept(socketID: socketID, tags: tags)
    }

    /// The object's open sockets, or those accepted with `tag`; after hibernation too.
    public func getWebSockets(tag: String? = nil) -> [WebSocket] {
        sockets.sockets(tag: tag)
    }

    /// Sets an automatic reply: a client message equal to `request` is answered with `response` without waking the
    /// object (a ping → pong that keeps idle connections alive cheaply). `nil` removes it.
    public func setWebSocketAutoResponse(request: String, response: String) {
        sockets.setAutoResponse((request, response))
    }

    /// Removes the automatic reply.
    public func removeWebSocketAutoResponse() {
        sockets.setAutoResponse(nil)
    }

    /// The automatic reply, if one is set.
    public var webSocketAutoResponse: (request: String, response: String)? { sockets.autoResponse }

    /// Runs `body` while no other event is delivered to the object, and returns its value.
    ///
    /// If `body` throws, the object is reset (its in-memory state is dropped; the next event re-creates it) and the
    /// error is rethrown. If it runs longer than the limit (30 s by default), it is cancelled, the object is reset,
    /// and this throws `A call to blockConcurrencyWhile() in a Durable Object waited for too long. …`.
    public func blockConcurrencyWhile<T: Sendable>(
        isolation: isolated (any Actor)? = #isolation, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        // The gate closes in the caller's turn, before anything suspends, so no event slips in.
        control.closeInputGate()
        defer { control.openInputGate() }
        return try await control.runBlocking(isolation: isolation, body)
    }

    /// Schedules `body` to run before any further event is delivered; for use in the initializer, which cannot
    /// wait. Events queue until it finishes; if it throws or times out, the object is reset.
    public func blockConcurrencyWhile(_ body: @escaping @Sendable () async throws -> Void) {
        control.scheduleBlocking(body)
    }
}

/// What an object's state and storage may ask of its activation.
protocol ActivationControl: AnyObject, Sendable {
    /// Stop delivering events until the matching ``openInputGate()``.
    func closeInputGate()
    /// Undo one ``closeInputGate()``.
    func openInputGate()
    /// Run `body` under the blockConcurrencyWhile rules (time limit; reset on throw).
    func runBlocking<T: Sendable>(
        isolation: isolated (any Actor)?, _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T
    /// Run `body` with the input gate closed, from a context that cannot wait (the initializer).
    func scheduleBlocking(_ body: @escaping @Sendable () async throws -> Void)
    /// The logger the object's own messages go to (made once, on first use).
    func makeObjectLogger() -> Logger
    /// The object's socket table, loaded from the database (made once, on first use).
    func makeSockets() -> ObjectSockets
}
