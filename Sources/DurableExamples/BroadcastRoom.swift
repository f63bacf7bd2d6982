import DurableObjects

/// A fan-out room: every text message a client sends reaches every client in the room, the sender included,
/// unchanged. No storage, no rate limit: it is what the load generator's `broadcast` workload measures (one
/// sender, many listeners). Sockets are hibernatable: an idle room can be evicted and wakes on the next message.
public actor BroadcastRoom: DurableObject {
    /// The object's state.
    public nonisolated let state: DurableObjectState

    /// Creates the instance.
    public init(state: DurableObjectState, env: Environment) {
        self.state = state
    }

    /// Accepts a WebSocket upgrade; anything else is `400`.
    public func fetch(_ request: Request) async throws -> Response {
        guard request.isWebSocketUpgrade else {
            return Response("Expected a WebSocket upgrade.", status: .badRequest)
        }
        let socket = try state.acceptWebSocket(request)
        return Response(webSocket: socket)
    }

    /// Sends the message to every socket in the room.
    public func webSocketMessage(_ socket: WebSocket, _ message: WebSocketMessage) async throws {
        for listener in state.getWebSockets() {
            switch message {
            case .text(let text): try listener.send(text)
            case .binary(let bytes): try listener.send(bytes)
            }
        }
    }
}
