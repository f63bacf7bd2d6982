import DurableExamples
@_spi(Testing) import DurableObjects
import Foundation
import TestSupport
import Testing

/// Joins `room` of the cluster's chat as `name`.
func join(_ cluster: LocalCluster, room: String, as name: String) async -> (TestWebSocket, [[String: Any]]) {
    await joinChat(httpPort: cluster.httpPort!, room: room, as: name)
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
            let socket = try await RawSocket.connect(port: port)
            await socket.send(
                Array(
                    ("GET /chat/api/room/errors/websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        + "Sec-WebSocket-Version: 13\r\n\r\n").utf8))
            let answer = String(decoding: await socket.receive(minimum: 12), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer)")
            // A masked text frame naming the client…
            let payload = Array(#"{"name": "mallory"}"#.utf8)
            let mask: [UInt8] = [1, 2, 3, 4]
            let masked = payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
            await socket.send([0x81, 0x80 | UInt8(payload.count)] + mask + masked)
            #expect(await nextEvent(alice) == "joined mallory")
            // …then a continuation frame with nothing to continue: the connection fails, and the room hears of it.
            await socket.send([0x80, 0x80] + mask)
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

/// Evicts the object once it is idle (its last turn and its outgoing frames may still be finishing); returns whether
/// it was evicted.
func evictWhenIdle(_ runtime: ObjectRuntime, namespaceID: String, id: DurableObjectId) async -> Bool {
    await eventually { runtime.evict(namespaceID: namespaceID, id: id) }
}
