import DurableExamples
import Foundation
import TestSupport
import Testing

/// The example app's routes that the load generator drives: `/ping`, `/counters/NAME/…` and the broadcast room.
@Suite("The example app's load-generator routes", .timeLimit(.minutes(2)))
struct LoadRoutesTests {
    @Test("/ping answers without an object; /counters/NAME/ reaches the Counter NAME and answers its bare value")
    func counters() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 2, configuration: ExampleApp.configuration) {
            cluster in
            let web = "http://127.0.0.1:\(cluster.httpPort!)"
            #expect(try await HTTPTestClient.send(web + "/ping").text == "pong")
            #expect(try await HTTPTestClient.send(web + "/counters/x/increment", method: "POST").text == "1")
            #expect(try await HTTPTestClient.send(web + "/counters/x/increment", method: "POST").text == "2")
            #expect(try await HTTPTestClient.send(web + "/counters/y/decrement", method: "POST").text == "-1")
            #expect(try await HTTPTestClient.send(web + "/counters/x/").text == "2")
            // The same object as the Counter the RPC client reaches by name.
            let counters = try cluster.gateway.workerEnvironment().namespace("COUNTER")
            #expect(try await counters.getByName("x").fetch("http://counter/").text() == "2")
            let missing = try await HTTPTestClient.send(web + "/counters/x")
            #expect(missing.status == 404)
            #expect(try await HTTPTestClient.send(web + "/counters/x/other").status == 404)
        }
    }

    @Test("a broadcast room sends every message to every socket in it, the sender included")
    func broadcast() async throws {
        try await withLocalCluster(app: ExampleApp.application, nodes: 2, configuration: ExampleApp.configuration) {
            cluster in
            let url = "ws://127.0.0.1:\(cluster.httpPort!)/broadcast/room-1/websocket"
            let alice = TestWebSocket(url)
            // Once a socket hears its own hello, the room holds it.
            alice.send("hello alice")
            #expect(await alice.next() == "hello alice")
            let bob = TestWebSocket(url)
            bob.send("hello bob")
            #expect(await bob.next() == "hello bob")
            #expect(await alice.next() == "hello bob")
            alice.send("hi")
            #expect(await alice.next() == "hi")
            #expect(await bob.next() == "hi")
            let plain = try await HTTPTestClient.send(
                "http://127.0.0.1:\(cluster.httpPort!)/broadcast/room-1/websocket")
            #expect(plain.status == 400)
            #expect(plain.text == "Expected a WebSocket upgrade.")
            alice.close()
            bob.close()
        }
    }
}
