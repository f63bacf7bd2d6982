import DurableClient
import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Logging
import Synchronization

/// The client WebSockets the gateway holds: it hands their events to the objects that accepted them (on whichever
/// node owns the object, activating it again if it hibernated) and writes the objects' frames back to the clients.
final class SocketRegistry: WebSocketRelay, WebSocketHub {
    private struct OpenSocket {
        var namespaceID: String
        var id: DurableObjectId
        var client: any WebSocketClientWriter
    }

    private let registry: any RegistryStore
    private let logger: Logger
    private let open = Mutex<[String: OpenSocket]>([:])
    /// The router that reaches the objects' nodes (attached once the router exists; it owns this registry).
    private let routerBox = Mutex<ObjectRouter?>(nil)
    /// Close events still to be delivered to objects that could not take them yet, by socket id.
    private let pendingCloses = Mutex<[String: Task<Void, Never>]>([:])
    /// Set by ``stop()``: client events are no longer handed on.
    private let stopped = Atomic<Bool>(false)
    /// How long the gateway waits between attempts to hand an object a close event, at most.
    let closeRetryCeiling: Duration

    /// This gateway process's session: the prefix of every socket id it makes. A node drops the rows of sockets
    /// whose session is not a live gateway's (their client connections died with that gateway).
    let session: String

    init(registry: any RegistryStore, logger: Logger, closeRetryCeiling: Duration = .seconds(30)) {
        self.registry = registry
        self.logger = logger
        self.closeRetryCeiling = closeRetryCeiling
        session = (0..<8).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
    }

    /// `<session>:<random uuid>`.
    func makeSocketID() -> String {
        WebSocketSessions.socketID(session: session, unique: UUID().uuidString.lowercased())
    }

    /// How many close events wait for their object.
    var pendingCloseCount: Int { pendingCloses.withLock { $0.count } }

    func attach(_ router: ObjectRouter) {
        routerBox.withLock { $0 = router }
    }

    /// How many client sockets are open.
    var count: Int { open.withLock { $0.count } }

    func opened(socketID: String, object: String, client: any WebSocketClientWriter) async {
        let parts = object.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, let namespace = registry.state.namespaces[parts[0]],
            let id = try? NamespaceKey(secret: namespace.secret).id(fromString: parts[1])
        else {
            logger.error("an object accepted a WebSocket with an unknown address '\(object)'")
            await client.write(.close(code: 1011, reason: "The Durable Object's address is not known here."))
            return
        }
        let socket = OpenSocket(namespaceID: parts[0], id: id, client: client)
        open.withLock { $0[socketID] = socket }
        logger.debug("WebSocket open", metadata: ["socket": "\(socketID)", "object": "\(object)"])
    }

    func clientEvent(socketID: String, event: WebSocketEvent) async {
        // A stopping gateway hands nothing on: the next gateway session's sweep closes its sockets at the nodes.
        guard !stopped.load(ordering: .acquiring), let socket = open.withLock({ $0[socketID] }) else { return }
        let ends: Bool
        switch event {
        case .message: ends = false
        case .close, .error: ends = true
        }
        if ends { open.withLock { _ = $0.removeValue(forKey: socketID) } }
        do {
            let known = try await send(event, of: socketID, to: socket)
            if !known && !ends {
                await close(
                    socketID, code: 1011, reason: "The Durable Object no longer holds this WebSocket.",
                    tellingObject: false)
            }
        } catch {
            logger.warning(
                "could not deliver a WebSocket event", metadata: ["socket": "\(socketID)", "error": "\(error)"])
            if ends {
                // The object must still learn that the socket ended, or it lists it forever.
                retryUntilDelivered(event, of: socketID, to: socket)
            } else {
                let reason = String(((error as? RPCError)?.message ?? "\(error)").prefix(120))
                await close(socketID, code: 1011, reason: reason)
            }
        }
    }

    /// Hands `event` to the socket's object; returns whether the object still held the socket.
    private func send(_ event: WebSocketEvent, of socketID: String, to socket: OpenSocket) async throws -> Bool {
        var message = Durable_V1_WebSocketEventRequest()
        message.namespaceID = socket.namespaceID
        message.objectID = Data(socket.id.bytes)
        message.socketID = socketID
        event.fill(&message)
        guard let router = routerBox.withLock({ $0 }) else {
            throw RPCError.unavailable("The gateway is stopping.")
        }
        let response: Durable_V1_WebSocketEventResponse = try await router.withOwner(of: socket.id) {
            node, epoch in
            message.placementEpoch = epoch
            return try await node.call(Methods.webSocketEvent, message)
        }
        return response.known
    }

    /// Keeps trying to hand a closing event to its object (its node may be down, or the object overloaded), with a
    /// backoff up to ``closeRetryCeiling``, until the object has it or the gateway stops.
    private func retryUntilDelivered(_ event: WebSocketEvent, of socketID: String, to socket: OpenSocket) {
        guard !stopped.load(ordering: .acquiring) else { return }
        let task = Task { [self] in
            var delay = Duration.milliseconds(100)
            var attempts = 1
            while !Task.isCancelled {
                try? await Task.sleep(for: delay)
                if Task.isCancelled { break }
                attempts += 1
                do {
                    _ = try await send(event, of: socketID, to: socket)
                    logger.info(
                        "delivered a WebSocket close event after \(attempts) attempts",
                        metadata: ["socket": "\(socketID)"])
                    break
                } catch {
                    if attempts % 10 == 0 {
                        logger.warning(
                            "still cannot deliver a WebSocket close event",
                            metadata: ["socket": "\(socketID)", "attempts": "\(attempts)", "error": "\(error)"])
                    }
                    delay = min(delay * 2, closeRetryCeiling)
                }
            }
            _ = pendingCloses.withLock { $0.removeValue(forKey: socketID) }
        }
        pendingCloses.withLock { $0[socketID] = task }
    }

    /// Stops retrying close events (the gateway is stopping: the nodes drop this session's sockets when the next
    /// gateway session reaches them).
    func stop() async {
        stopped.store(true, ordering: .releasing)
        let tasks = pendingCloses.withLock { $0.values }
        for task in tasks { task.cancel() }
        for task in tasks { await task.value }
    }

    /// Writes objects' frames to their clients, in order.
    func deliver(_ frames: [WebSocketFrame]) async throws {
        for frame in frames {
            guard let socket = open.withLock({ $0[frame.socketID] }) else {
                logger.debug("dropping a frame for a closed WebSocket", metadata: ["socket": "\(frame.socketID)"])
                continue
            }
            if case .close = frame.kind { open.withLock { _ = $0.removeValue(forKey: frame.socketID) } }
            await socket.client.write(frame.kind)
        }
    }

    /// Closes a client's socket on the gateway's own account (the client sees `code` and `reason`) and, unless the
    /// object no longer holds it, tells the object the connection ended abnormally (1006).
    private func close(_ socketID: String, code: Int, reason: String, tellingObject: Bool = true) async {
        guard let socket = open.withLock({ $0.removeValue(forKey: socketID) }) else { return }
        await socket.client.write(.close(code: code, reason: reason))
        guard tellingObject else { return }
        let event = WebSocketEvent.close(code: 1006, reason: reason, wasClean: false)
        do {
            _ = try await send(event, of: socketID, to: socket)
        } catch {
            retryUntilDelivered(event, of: socketID, to: socket)
        }
    }
}
