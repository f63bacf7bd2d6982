import Foundation
import HummingbirdWSClient
import Logging
import NIOWebSocket
import Synchronization

/// A real WebSocket client for tests: messages arrive in ``next()``; ``send(_:)`` and ``close()`` write.
public final class TestWebSocket: Sendable {
    private enum Command: Sendable {
        case text(String)
        case close(code: WebSocketErrorCode, reason: String)
    }

    private let inbox = Inbox()
    private let commands: AsyncStream<Command>.Continuation
    private let connection: Task<WebSocketCloseFrame?, any Error>

    /// Connects to `url` (ws://127.0.0.1:PORT/…).
    public init(_ url: String) {
        let (stream, commands) = AsyncStream.makeStream(of: Command.self)
        self.commands = commands
        let inbox = self.inbox
        var logger = Logger(label: "test.ws")
        logger.logLevel = .warning
        connection = Task {
            try await WebSocketClient.connect(
                url: url, configuration: .init(maxFrameSize: 8 * 1024 * 1024), logger: logger
            ) { inbound, outbound, _ in
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 8 * 1024 * 1024) {
                            if case .text(let text) = message { await inbox.push(text) }
                        }
                    }
                    group.addTask {
                        for await command in stream {
                            switch command {
                            case .text(let text): try await outbound.write(.text(text))
                            case .close(let code, let reason):
                                try await outbound.close(code, reason: reason)
                                return
                            }
                        }
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
                await inbox.finish()
            }
        }
    }

    /// Sends a text message.
    public func send(_ text: String) { commands.yield(.text(text)) }

    /// Closes the socket normally.
    public func close() { commands.yield(.close(code: .normalClosure, reason: "bye")) }

    /// Closes the socket with a status code (1000, or 3000–4999) and reason of the test's choosing.
    public func close(code: Int, reason: String) {
        commands.yield(.close(code: WebSocketErrorCode(codeNumber: code), reason: reason))
    }

    /// The next text message, or `nil` once the socket closed.
    public func next() async -> String? { await inbox.next() }

    /// The next message decoded as a JSON object.
    public func nextObject() async -> [String: Any]? {
        guard let text = await next() else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }

    /// Waits for the connection to end; returns the server's close frame.
    public func closed() async throws -> WebSocketCloseFrame? {
        try await connection.value
    }

    /// Waits for the connection to end; returns the code of the server's close frame (`nil` without one).
    public func closeCode() async -> Int? {
        guard let frame = try? await connection.value else { return nil }
        return Int(UInt16(webSocketErrorCode: frame.closeCode))
    }

    deinit { commands.finish() }
}

/// Messages received and not yet read, and readers waiting for one.
private actor Inbox {
    private var messages: [String] = []
    private var waiters: [CheckedContinuation<String?, Never>] = []
    private var finished = false

    func push(_ text: String) {
        if waiters.isEmpty { messages.append(text) } else { waiters.removeFirst().resume(returning: text) }
    }

    func finish() {
        finished = true
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters = []
    }

    func next() async -> String? {
        if !messages.isEmpty { return messages.removeFirst() }
        if finished { return nil }
        return await withCheckedContinuation { waiters.append($0) }
    }
}

/// Joins the example app's chat `room` (served on `host`:`httpPort`) as `name` and reads until the room says it is
/// ready; returns the socket and the history it sent.
public func joinChat(
    host: String = "127.0.0.1", httpPort: Int, room: String, as name: String
) async -> (TestWebSocket, [[String: Any]]) {
    let socket = TestWebSocket("ws://\(host):\(httpPort)/chat/api/room/\(room)/websocket")
    socket.send(#"{"name": "\#(name)"}"#)
    var history: [[String: Any]] = []
    while let message = await socket.nextObject() {
        if message["ready"] != nil { break }
        if message["message"] != nil { history.append(message) }
    }
    return (socket, history)
}

/// Reads until a chat message (skipping joins and quits); returns "name: message".
public func nextChat(_ socket: TestWebSocket) async -> String? {
    while let message = await socket.nextObject() {
        if let error = message["error"] as? String { return "error: \(error)" }
        if let name = message["name"] as? String, let text = message["message"] as? String { return "\(name): \(text)" }
    }
    return nil
}

/// Reads until an announcement (`joined`, `quit`) or a chat message; returns it as text.
public func nextEvent(_ socket: TestWebSocket) async -> String? {
    guard let message = await socket.nextObject() else { return nil }
    if let joined = message["joined"] as? String { return "joined \(joined)" }
    if let quit = message["quit"] as? String { return message["error"] != nil ? "failed \(quit)" : "quit \(quit)" }
    if let error = message["error"] as? String { return "error: \(error)" }
    if let name = message["name"] as? String, let text = message["message"] as? String { return "\(name): \(text)" }
    return "\(message)"
}
