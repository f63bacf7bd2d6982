import DurableExamples
import DurableObjects
import Foundation
import Testing
import WireTestSupport

/// Joins `room` as `name` and reads until the room says it is ready; returns the socket and the history it sent.
func join(_ cluster: LocalCluster, room: String, as name: String) async -> (TestWebSocket, [[String: Any]]) {
    let socket = TestWebSocket("ws://127.0.0.1:\(cluster.httpPort!)/chat/api/room/\(room)/websocket")
    socket.send(#"{"name": "\#(name)"}"#)
    var history: [[String: Any]] = []
    while let message = await socket.nextObject() {
        if message["ready"] != nil { break }
        if message["message"] != nil { history.append(message) }
    }
    return (socket, history)
}

/// Reads until a chat message (skipping joins and quits); returns "name: message".
func nextChat(_ socket: TestWebSocket) async -> String? {
    while let message = await socket.nextObject() {
        if let error = message["error"] as? String { return "error: \(error)" }
        if let name = message["name"] as? String, let text = message["message"] as? String { return "\(name): \(text)" }
    }
    return nil
}

/// Reads until an announcement (`joined`, `quit`) or a chat message; returns it as text.
func nextEvent(_ socket: TestWebSocket) async -> String? {
    guard let message = await socket.nextObject() else { return nil }
    if let joined = message["joined"] as? String { return "joined \(joined)" }
    if let quit = message["quit"] as? String { return message["error"] != nil ? "failed \(quit)" : "quit \(quit)" }
    if let error = message["error"] as? String { return "error: \(error)" }
    if let name = message["name"] as? String, let text = message["message"] as? String { return "\(name): \(text)" }
    return "\(message)"
}

/// The room object's id and the node that runs it.
func roomLocation(_ cluster: LocalCluster, _ room: String) throws -> (namespaceID: String, id: DurableObjectId) {
    let rooms = try cluster.gateway.workerEnvironment().namespace("ROOMS")
    return (rooms.namespaceID, rooms.idFromName(room))
}

@Suite("The chat room over WebSockets (real clients)", .timeLimit(.minutes(2)))
struct ChatTests {
    @Test("two clients in one room receive each other's messages in the same order; a close reaches the room")
    func twoClients() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 2, configuration: ExampleApp.configuration) {
            cluster in
            let (alice, _) = await join(cluster, room: "order", as: "alice")
            let (bob, _) = await join(cluster, room: "order", as: "bob")
            #expect(await nextEvent(alice) == "joined bob")
            alice.send(#"{"message": "one"}"#)
            #expect(await nextChat(alice) == "alice: one")
            bob.send(#"{"message": "two"}"#)
            #expect(await nextChat(bob) == "alice: one")
            #expect(await nextChat(bob) == "bob: two")
            #expect(await nextChat(alice) == "bob: two")
            alice.send(#"{"message": "three"}"#)
            #expect(await nextChat(alice) == "alice: three")
            #expect(await nextChat(bob) == "alice: three")
            // Bob leaves: the room's close handler tells Alice.
            bob.close()
            _ = try await bob.closed()
            #expect(await nextEvent(alice) == "quit bob")
            alice.close()
        }
    }

    @Test("the history survives an eviction and a node restart")
    func historySurvives() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 1, configuration: ExampleApp.configuration) {
            cluster in
            let (writer, _) = await join(cluster, room: "history", as: "writer")
            for index in 1...3 {
                writer.send(#"{"message": "m\#(index)"}"#)
                #expect(await nextChat(writer) == "writer: m\(index)")
            }
            writer.close()
            _ = try await writer.closed()
            let (namespaceID, id) = try roomLocation(cluster, "history")
            #expect(await evictWhenIdle(cluster.nodes[0].runtime, namespaceID: namespaceID, id: id))
            let (reader, seen) = await join(cluster, room: "history", as: "reader")
            #expect(seen.compactMap { $0["message"] as? String } == ["m1", "m2", "m3"])
            reader.close()
            _ = try await reader.closed()

            try await cluster.restartNode(0)
            let (late, after) = await join(cluster, room: "history", as: "late")
            #expect(after.compactMap { $0["message"] as? String } == ["m1", "m2", "m3"])
            late.close()
        }
    }

    @Test("a hibernated room wakes on a message and still broadcasts to every socket; ping is answered asleep")
    func hibernation() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 1, configuration: ExampleApp.configuration) {
            cluster in
            let (alice, _) = await join(cluster, room: "sleepy", as: "alice")
            let (bob, _) = await join(cluster, room: "sleepy", as: "bob")
            #expect(await nextEvent(alice) == "joined bob")
            let (namespaceID, id) = try roomLocation(cluster, "sleepy")
            let runtime = cluster.nodes[0].runtime
            #expect(
                await evictWhenIdle(runtime, namespaceID: namespaceID, id: id),
                "an idle room with open sockets can leave memory")
            #expect(!runtime.isActive(namespaceID: namespaceID, id: id))
            // The automatic reply answers without waking the room.
            alice.send("ping")
            #expect(await alice.next() == "pong")
            #expect(!runtime.isActive(namespaceID: namespaceID, id: id))
            // A message wakes it, and it still reaches both sockets.
            bob.send(#"{"message": "good morning"}"#)
            #expect(await nextChat(alice) == "bob: good morning")
            #expect(await nextChat(bob) == "bob: good morning")
            #expect(runtime.isActive(namespaceID: namespaceID, id: id))
            alice.close()
            bob.close()
        }
    }

    @Test("the rate limiter answers over the socket when a client posts too fast")
    func rateLimited() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 2, configuration: ExampleApp.configuration) {
            cluster in
            let (client, _) = await join(cluster, room: "busy", as: "speedy")
            var answers: [String] = []
            for index in 1...5 {
                client.send(#"{"message": "m\#(index)"}"#)
                answers.append(await nextChat(client) ?? "closed")
            }
            #expect(answers.prefix(4) == ["speedy: m1", "speedy: m2", "speedy: m3", "speedy: m4"])
            #expect(answers.last == "error: Your IP is being rate-limited, please try again later.")
            client.close()
        }
    }

    @Test("a message over the limit closes the socket with 1009 and a reason; the room keeps serving")
    func oversizedMessage() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 1, configuration: ExampleApp.configuration) {
            cluster in
            let (big, _) = await join(cluster, room: "limits", as: "big")
            big.send(String(repeating: "x", count: WebSocketLimits.defaultMaximumMessageSize + 1))
            let frame = try await big.closed()
            #expect(frame?.closeCode == .messageTooLarge)
            #expect(
                frame?.reason?.contains("the limit is 1048576 bytes") == true, "\(String(describing: frame?.reason))")
            let (small, _) = await join(cluster, room: "limits", as: "small")
            small.send(#"{"message": "still here"}"#)
            #expect(await nextChat(small) == "small: still here")
            small.close()
        }
    }

    @Test("a client that breaks the protocol ends with an error event the room handles")
    func errorEvent() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 1, configuration: ExampleApp.configuration) {
            cluster in
            let (alice, _) = await join(cluster, room: "errors", as: "alice")
            let port = cluster.httpPort!
            let raw = try await blocking {
                let socket = try RawSocket(port: port)
                socket.send(
                    Array(
                        ("GET /chat/api/room/errors/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                            + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            + "Sec-WebSocket-Version: 13\r\n\r\n").utf8))
                let answer = String(decoding: socket.receive(minimum: 12), as: UTF8.self)
                return (socket, answer)
            }
            #expect(raw.1.hasPrefix("HTTP/1.1 101"), "\(raw.1)")
            // A masked text frame naming the client…
            let payload = Array(#"{"name": "mallory"}"#.utf8)
            let mask: [UInt8] = [1, 2, 3, 4]
            let masked = payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
            raw.0.send([0x81, 0x80 | UInt8(payload.count)] + mask + masked)
            #expect(await nextEvent(alice) == "joined mallory")
            // …then a continuation frame with nothing to continue: the connection fails, and the room hears of it.
            raw.0.send([0x80, 0x80] + mask)
            #expect(await nextEvent(alice) == "failed mallory")
            alice.close()
        }
    }

    @Test("the chat page is served at /chat/, and a plain request to a room's socket path is refused")
    func page() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 1, configuration: ExampleApp.configuration) {
            cluster in
            let page = try await HTTPTestClient.send(cluster.url + "/chat/")
            #expect(page.status == 200 && page.text.contains("new WebSocket("))
            #expect(page.header("Content-Type")?.hasPrefix("text/html") == true)
            let plain = try await HTTPTestClient.send(cluster.url + "/chat/api/room/lobby/websocket")
            #expect(plain.status == 400 && plain.text == "expected websocket")
        }
    }
}

/// Runs blocking socket work off the cooperative pool.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// Evicts the object once it is idle (its last turn and its outgoing frames may still be finishing); returns whether
/// it was evicted within ten seconds.
func evictWhenIdle(_ runtime: ObjectRuntime, namespaceID: String, id: DurableObjectId) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(10)
    while ContinuousClock.now < deadline {
        if runtime.evict(namespaceID: namespaceID, id: id) { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return false
}
