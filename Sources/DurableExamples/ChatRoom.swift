import DurableObjects
import Foundation

/// A chat room, in the spirit of Cloudflare's workers-chat-demo: clients open a WebSocket, send
/// `{"name": "…"}` first, then `{"message": "…"}`; everyone in the room receives
/// `{"name", "message", "timestamp"}`, plus `{"joined": name}` and `{"quit": name}` (with `"error": true` when the
/// connection failed). The last 100 messages are kept
/// in the room's storage and replayed to each newcomer. Each client IP is rate-limited by a ``RateLimiter``
/// object; a limited client gets `{"error": "Your IP is being rate-limited, please try again later."}`.
///
/// The room uses hibernatable sockets: the connections stay at the gateway, so an idle room can leave memory and
/// wake on the next message; each socket's name and IP travel in its attachment.
public actor ChatRoom: DurableObject {
    /// The object's state.
    public nonisolated let state: DurableObjectState
    let env: Environment

    /// What a socket carries across hibernation.
    struct Session: Codable {
        var ip: String
        var name: String?
    }

    /// One stored or broadcast chat message.
    struct ChatMessage: Codable {
        var name: String
        var message: String
        var timestamp: Int
    }

    /// The longest message a client may send, in characters.
    static let maximumMessageLength = 256
    /// How many messages a newcomer sees.
    static let historyLength = 100

    /// Creates the instance; answers `ping` with `pong` without waking the room.
    public init(state: DurableObjectState, env: Environment) {
        self.state = state
        self.env = env
        state.setWebSocketAutoResponse(request: "ping", response: "pong")
    }

    /// Accepts a WebSocket (`/websocket`); anything else is `404`.
    public func fetch(_ request: Request) async throws -> Response {
        guard request.path.hasSuffix("/websocket") else { return Response("Not found", status: .notFound) }
        guard request.isWebSocketUpgrade else { return Response("expected websocket", status: .badRequest) }
        let socket = try state.acceptWebSocket(request)
        let ip = request.headers[HTTPField.Name("CF-Connecting-IP")!] ?? "unknown"
        try socket.serializeAttachment(Session(ip: ip, name: nil))
        return Response(webSocket: socket)
    }

    /// Handles `{"name"}` (joining) and `{"message"}` (chatting).
    public func webSocketMessage(_ socket: WebSocket, _ message: WebSocketMessage) async throws {
        guard case .text(let text) = message,
            let fields = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
        else {
            try socket.send(Self.json(["error": "Messages must be JSON objects."]))
            return
        }
        var session = try socket.deserializeAttachment(as: Session.self) ?? Session(ip: "unknown")
        guard let name = session.name else {
            // The first message names the client: replay the history, then announce it.
            let requested = (fields["name"] as? String ?? "").trimmingCharacters(in: .whitespaces)
            guard !requested.isEmpty, requested.count <= 32 else {
                try socket.send(Self.json(["error": "Name must be 1 to 32 characters."]))
                try socket.close(code: 1009, reason: "Name must be 1 to 32 characters.")
                return
            }
            session.name = requested
            try socket.serializeAttachment(session)
            let history = try await state.storage.list(
                StorageListOptions(prefix: "msg:", reverse: true, limit: Self.historyLength), as: ChatMessage.self)
            for entry in history.elements.reversed() { try socket.send(Self.json(entry.value)) }
            try broadcast(Self.json(["joined": requested]))
            try socket.send(Self.json(["ready": true]))
            return
        }
        let body = String(describing: fields["message"] ?? "")
        guard body.count <= Self.maximumMessageLength else {
            try socket.send(Self.json(["error": "Message too long."]))
            return
        }
        guard try await allowed(ip: session.ip) else {
            try socket.send(Self.json(["error": "Your IP is being rate-limited, please try again later."]))
            return
        }
        // Timestamps are unique and increasing, so keys sort in message order.
        let last = try await state.storage.get("lastTimestamp", as: Int.self) ?? 0
        let timestamp = max(Int(Date().timeIntervalSince1970 * 1000), last + 1)
        let chat = ChatMessage(name: name, message: body, timestamp: timestamp)
        try state.storage.put("lastTimestamp", timestamp)
        try state.storage.put("msg:" + String(format: "%015d", timestamp), chat)
        try broadcast(Self.json(chat))
    }

    /// Announces that the client left.
    public func webSocketClose(_ socket: WebSocket, code: Int, reason: String, wasClean: Bool) async throws {
        if let name = try socket.deserializeAttachment(as: Session.self)?.name {
            try broadcast(Self.json(["quit": name]), except: socket)
        }
    }

    /// Announces that the client's connection failed.
    public func webSocketError(_ socket: WebSocket, _ error: String) async throws {
        state.logger.info("a chat connection failed: \(error)")
        if let name = try socket.deserializeAttachment(as: Session.self)?.name {
            try broadcast(Self.json(["quit": name, "error": true]), except: socket)
        }
    }

    /// Sends `text` to every named client (except `skipped`).
    func broadcast(_ text: String, except skipped: WebSocket? = nil) throws {
        for socket in state.getWebSockets() where socket != skipped {
            guard (try? socket.deserializeAttachment(as: Session.self))??.name != nil else { continue }
            try? socket.send(text)
        }
    }

    /// Asks the client IP's rate limiter whether it may post now.
    func allowed(ip: String) async throws -> Bool {
        let limiters = try env.namespace("LIMITERS")
        let answer = try await limiters.getByName(ip).fetch("http://limiter/", method: .post)
        return (Double(answer.text()) ?? 0) == 0
    }

    static func json(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func json(_ object: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }
}

/// The rate limiter of the chat demo, one per client IP: each post costs 5 seconds, with a 20-second grace, so a
/// burst of four posts passes and a fifth within the same seconds is refused. A `POST` records a post; every
/// request answers the seconds to wait (`0`: allowed).
public actor RateLimiter: DurableObject {
    /// The object's state.
    public nonisolated let state: DurableObjectState
    private var nextAllowedTime: Double = 0

    /// Creates the instance (the limiter keeps no storage: it starts fresh after eviction).
    public init(state: DurableObjectState, env: Environment) { self.state = state }

    /// Answers the cooldown in seconds.
    public func fetch(_ request: Request) async throws -> Response {
        let now = Date().timeIntervalSince1970
        nextAllowedTime = max(now, nextAllowedTime)
        if request.method == .post { nextAllowedTime += 5 }
        let cooldown = max(0, nextAllowedTime - now - 20)
        return Response(cooldown == 0 ? "0" : String(format: "%.3f", cooldown))
    }
}
