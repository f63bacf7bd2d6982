import Foundation

/// One WebSocket message.
public enum WebSocketMessage: Sendable, Hashable {
    /// A text message.
    case text(String)
    /// A binary message.
    case binary([UInt8])

    /// The message's size in bytes.
    public var byteCount: Int {
        switch self {
        case .text(let text): text.utf8.count
        case .binary(let bytes): bytes.count
        }
    }
}

/// Something an object sends on one of its sockets.
public struct WebSocketFrame: Sendable, Hashable {
    /// What is sent.
    public enum Kind: Sendable, Hashable {
        /// A message.
        case message(WebSocketMessage)
        /// A close, with its code and reason.
        case close(code: Int, reason: String)
    }

    /// The socket.
    public var socketID: String
    /// What is sent.
    public var kind: Kind

    /// Creates a frame.
    public init(socketID: String, kind: Kind) {
        self.socketID = socketID
        self.kind = kind
    }
}

/// Carries what objects send on their sockets to whoever holds the client connections (the gateway).
public protocol WebSocketHub: Sendable {
    /// Delivers `frames`, in order, to the clients of the sockets they name.
    func deliver(_ frames: [WebSocketFrame]) async throws
}

/// The client's side of an open socket, as the gateway writes to it (the HTTP bridge provides it).
public protocol WebSocketClientWriter: Sendable {
    /// Writes one frame from the object to the client.
    func write(_ kind: WebSocketFrame.Kind) async
}

/// Where the HTTP bridge hands the sockets it opened: the gateway, which routes their events to the objects and
/// their objects' frames back to the clients.
public protocol WebSocketRelay: Sendable {
    /// A client's socket is open for the object `object` (`<namespace id>/<object id hex>`); frames for it go to
    /// `client` until ``clientEvent(socketID:event:)`` reports its close.
    func opened(socketID: String, object: String, client: any WebSocketClientWriter) async

    /// Something happened on the client's side of the socket; returns once the object has it.
    func clientEvent(socketID: String, event: WebSocketEvent) async

    /// A new, unique id for a socket the bridge is about to offer an object.
    func makeSocketID() -> String
}

/// What happened on a socket, delivered to its object as an event.
public enum WebSocketEvent: Sendable, Hashable {
    /// The client sent a message.
    case message(WebSocketMessage)
    /// The client closed the socket (or it went away: `wasClean` is then `false`).
    case close(code: Int, reason: String, wasClean: Bool)
    /// The connection failed.
    case error(String)
}

/// The limits of an object's sockets.
public enum WebSocketLimits {
    /// The largest message a client may send, by default (1 MiB); larger ones close the socket with 1009.
    public static let defaultMaximumMessageSize = 1024 * 1024
    /// How many sockets one object may hold open.
    public static let maximumSocketsPerObject = 32_768
    /// The largest serialised attachment of one socket.
    public static let maximumAttachmentSize = 2048
    /// The header the gateway puts on a WebSocket upgrade request: the id the socket will have.
    public static let socketIDHeader = HTTPField.Name("X-Durable-WebSocket-Id")!
    /// The header on a `101` response that tells the gateway which object accepted the socket
    /// (`<namespace id>/<object id hex>`).
    public static let objectHeader = HTTPField.Name("X-Durable-Object")!
}

/// Socket ids name the gateway session that holds the client's connection: `<session>:<unique part>`. When a
/// gateway session ends (the process stopped or crashed), its client connections are gone, and the nodes drop the
/// rows of its sockets, telling each object its socket closed (1006).
public enum WebSocketSessions {
    /// The id of a socket held by gateway session `session`.
    public static func socketID(session: String, unique: String) -> String { "\(session):\(unique)" }

    /// The gateway session of `socketID`, or `nil` for an id that names none (sockets opened in-process).
    public static func session(ofSocket socketID: String) -> String? {
        guard let colon = socketID.firstIndex(of: ":"), colon != socketID.startIndex else { return nil }
        return String(socketID[..<colon])
    }

    /// The close event an object receives for a socket whose gateway session ended.
    public static let lostConnection = WebSocketEvent.close(
        code: 1006, reason: "The gateway that held this WebSocket's connection stopped.", wasClean: false)
}

/// A WebSocket an object accepted. The client's connection stays with the gateway, so the object can be evicted
/// from memory while its sockets stay open ("hibernation"); the next event re-creates it, and
/// ``DurableObjectState/getWebSockets(tag:)`` returns them again.
public struct WebSocket: Sendable, Hashable {
    /// The socket's id (unique in the cluster).
    public let id: String
    /// The tags given when it was accepted.
    public let tags: [String]
    let table: ObjectSockets

    init(id: String, tags: [String], table: ObjectSockets) {
        self.id = id
        self.tags = tags
        self.table = table
    }

    /// Sends a text message. It leaves once the object's earlier writes are durable (the output gate).
    public func send(_ text: String) throws { try table.send(.message(.text(text)), on: id) }

    /// Sends a binary message (after the output gate, like text).
    public func send(_ bytes: [UInt8]) throws { try table.send(.message(.binary(bytes)), on: id) }

    /// Closes the socket with `code` and `reason`.
    public func close(code: Int = 1000, reason: String = "") throws {
        try table.send(.close(code: code, reason: reason), on: id)
        table.remove(id)
    }

    /// Keeps a small value with the socket (at most 2,048 bytes as JSON); it survives hibernation.
    public func serializeAttachment<T: Encodable>(_ value: T) throws {
        let bytes = Array(try JSONEncoder().encode(value))
        guard bytes.count <= WebSocketLimits.maximumAttachmentSize else {
            throw DurableObjectError(
                .invalidArgument,
                "A WebSocket attachment is limited to \(WebSocketLimits.maximumAttachmentSize) bytes; this one is \(bytes.count) bytes."
            )
        }
        table.setAttachment(bytes, for: id)
    }

    /// The value kept with ``serializeAttachment(_:)``, or `nil` when there is none.
    public func deserializeAttachment<T: Decodable>(as type: T.Type = T.self) throws -> T? {
        guard let bytes = table.attachment(for: id) else { return nil }
        return try JSONDecoder().decode(T.self, from: Data(bytes))
    }

    /// Two handles are equal when they name the same socket.
    public static func == (lhs: WebSocket, rhs: WebSocket) -> Bool { lhs.id == rhs.id }
    /// Hashes the socket's id.
    public func hash(into hasher: inout Hasher) { hasher.combine(id) }
}

extension Response {
    /// The answer that completes a WebSocket upgrade the object accepted with
    /// ``DurableObjectState/acceptWebSocket(_:tags:)``.
    public init(webSocket: WebSocket) {
        self.init(status: .switchingProtocols)
        headers[WebSocketLimits.socketIDHeader] = webSocket.id
        headers[WebSocketLimits.objectHeader] = webSocket.table.address
    }

    /// The socket this response accepts, if it is a `101` from an object.
    public var acceptedWebSocket: (socketID: String, object: String)? {
        guard status == .switchingProtocols, let id = headers[WebSocketLimits.socketIDHeader],
            let object = headers[WebSocketLimits.objectHeader]
        else { return nil }
        return (id, object)
    }
}

extension Request {
    /// Whether this is a WebSocket upgrade request (`Upgrade: websocket`).
    public var isWebSocketUpgrade: Bool {
        headers[.upgrade]?.lowercased() == "websocket"
    }
}
