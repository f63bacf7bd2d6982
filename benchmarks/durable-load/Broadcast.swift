import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import Synchronization

/// The `broadcast` workload: `listeners` WebSockets join one ``BroadcastRoom`` through the HTTP bridge; calls send
/// a message from one of the first `senders` sockets (round robin) and finish when it comes back to its sender,
/// that is, once the room has sent it to everyone. Every socket that receives a message records the time from
/// the call's intended start to that delivery, so the latency figures are per delivery.
final class BroadcastOperation: Operation {
    let recordsItsOwnLatency = true
    private let sockets: [BroadcastSocket]
    private let senders: Int
    private let next = Atomic<Int>(0)

    /// Connects the sockets; returns when every one is open.
    init(host: String, port: Int, listeners: Int, senders: Int, recorder: Recorder) async throws {
        let room = "load-\(UUID().uuidString.prefix(8))"
        let url = "ws://\(host):\(port)/broadcast/\(room)/websocket"
        var sockets: [BroadcastSocket] = []
        for index in 0..<max(listeners, senders) {
            sockets.append(try await BroadcastSocket.open(url, index: index, recorder: recorder))
        }
        self.sockets = sockets
        self.senders = max(1, senders)
    }

    func run(intended: ContinuousClock.Instant) async throws {
        let sender = sockets[next.wrappingAdd(1, ordering: .relaxed).oldValue % senders]
        try await sender.sendAndAwaitEcho(stamp: intended)
    }

    func close() async {
        for socket in sockets { await socket.close() }
    }
}

/// Lets a connection's reader reach its socket object, which is made after the connection starts.
final class SocketBox: Sendable {
    let socket = Mutex<BroadcastSocket?>(nil)
}

/// The time origin shared by senders and receivers (one process, one clock).
let broadcastOrigin = ContinuousClock.now

/// One WebSocket of the room.
final class BroadcastSocket: Sendable {
    private enum Command: Sendable {
        case text(String)
        case close
    }

    let index: Int
    private let commands: AsyncStream<Command>.Continuation
    private let connection: Task<Void, any Error>
    private let waiting = Mutex<[UInt64: CheckedContinuation<Void, any Error>]>([:])
    private let sequence = Atomic<UInt64>(0)
    private let recorder: Recorder

    private init(
        index: Int, commands: AsyncStream<Command>.Continuation, connection: Task<Void, any Error>, recorder: Recorder
    ) {
        self.index = index
        self.commands = commands
        self.connection = connection
        self.recorder = recorder
    }

    /// Opens a socket and waits until the upgrade is done.
    static func open(_ url: String, index: Int, recorder: Recorder) async throws -> BroadcastSocket {
        let (stream, commands) = AsyncStream.makeStream(of: Command.self)
        let box = SocketBox()
        var quiet = Logger(label: "durable-load.ws")
        quiet.logLevel = .warning
        let logger = quiet
        let opened = AsyncStream.makeStream(of: Void.self)
        let openedContinuation = opened.continuation
        let connection = Task {
            defer { openedContinuation.finish() }
            _ = try await WebSocketClient.connect(url: url, logger: logger) { inbound, outbound, _ in
                openedContinuation.yield()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for try await message in inbound.messages(maxSize: 1 << 20) {
                            guard case .text(let text) = message else { continue }
                            box.socket.withLock { $0 }?.received(text)
                        }
                    }
                    group.addTask {
                        for await command in stream {
                            switch command {
                            case .text(let text): try await outbound.write(.text(text))
                            case .close:
                                try await outbound.close(.normalClosure, reason: "done")
                                return
                            }
                        }
                    }
                    _ = try await group.next()
                    group.cancelAll()
                }
            }
        }
        let socket = BroadcastSocket(index: index, commands: commands, connection: connection, recorder: recorder)
        box.socket.withLock { $0 = socket }
        var iterator = opened.stream.makeAsyncIterator()
        guard await iterator.next() != nil else {
            try await connection.value
            throw LoadError("The WebSocket to \(url) closed before it opened.")
        }
        return socket
    }

    /// Sends `index:sequence:nanoseconds` and waits until the room sends it back to this socket.
    func sendAndAwaitEcho(stamp: ContinuousClock.Instant) async throws {
        let number = sequence.wrappingAdd(1, ordering: .relaxed).oldValue
        let text = "\(index):\(number):\(nanoseconds(stamp - broadcastOrigin))"
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            waiting.withLock { $0[number] = continuation }
            commands.yield(.text(text))
        }
    }

    /// A delivery: record its latency; an echo of our own message ends that call.
    private func received(_ text: String) {
        let fields = text.split(separator: ":")
        guard fields.count == 3, let sender = Int(fields[0]), let number = UInt64(fields[1]),
            let sent = UInt64(fields[2])
        else { return }
        let now = nanoseconds(ContinuousClock.now - broadcastOrigin)
        recorder.record(latency: now >= sent ? now - sent : 0)
        if sender == index, let continuation = waiting.withLock({ $0.removeValue(forKey: number) }) {
            continuation.resume()
        }
    }

    /// Closes the socket; calls still waiting fail.
    func close() async {
        commands.yield(.close)
        commands.finish()
        _ = try? await connection.value
        for continuation in waiting.withLock({ state in
            defer { state.removeAll() }; return Array(state.values)
        }) {
            continuation.resume(throwing: LoadError("The socket closed before its message came back."))
        }
    }
}
