import DurableClient
import DurableHTTP
import DurableObjects
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
        var client: WebSocketClientConnection
    }

    private let registry: Registry
    private let logger: Logger
    private let open = Mutex<[String: OpenSocket]>([:])
    /// The router that reaches the objects' nodes (attached once the router exists; it owns this registry).
    private let routerBox = Mutex<Router?>(nil)

    init(registry: Registry, logger: Logger) {
        self.registry = registry
        self.logger = logger
    }

    func attach(_ router: Router) {
        routerBox.withLock { $0 = router }
    }

    /// How many client sockets are open.
    var count: Int { open.withLock { $0.count } }

    func opened(socketID: String, object: String, client: WebSocketClientConnection) async {
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
        guard let socket = open.withLock({ $0[socketID] }) else { return }
        let ends: Bool
        switch event {
        case .message: ends = false
        case .close, .error: ends = true
        }
        if ends { open.withLock { _ = $0.removeValue(forKey: socketID) } }
        var message = Durable_V1_WebSocketEventRequest()
        message.namespaceID = socket.namespaceID
        message.objectID = Data(socket.id.bytes)
        message.socketID = socketID
        event.fill(&message)
        do {
            guard let router = routerBox.withLock({ $0 }) else {
                throw RPCError.unavailable("The gateway is stopping.")
            }
            let response: Durable_V1_WebSocketEventResponse = try await router.withOwner(of: socket.id) {
                client, epoch in
                message.placementEpoch = epoch
                return try await client.call(Methods.webSocketEvent, message)
            }
            if !response.known && !ends {
                await close(socketID, code: 1011, reason: "The Durable Object no longer holds this WebSocket.")
            }
        } catch {
            logger.warning(
                "could not deliver a WebSocket event", metadata: ["socket": "\(socketID)", "error": "\(error)"])
            if !ends {
                let reason = (error as? RPCError)?.message ?? "\(error)"
                await close(socketID, code: 1011, reason: String(reason.prefix(120)))
            }
        }
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

    private func close(_ socketID: String, code: Int, reason: String) async {
        guard let socket = open.withLock({ $0.removeValue(forKey: socketID) }) else { return }
        await socket.client.write(.close(code: code, reason: reason))
    }
}
