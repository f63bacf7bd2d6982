import DurableObjects
import Foundation
import TestSupport
import Testing

/// An object that accepts sockets at `/socket`, answers `/sockets` with how many it holds, and `/closes` with the
/// close events it received (`code|reason|wasClean`, one a line, kept in storage).
actor SocketProbe: DurableObject {
    nonisolated let state: DurableObjectState

    init(state: DurableObjectState, env: Environment) {
        self.state = state
    }

    func fetch(_ request: Request) async throws -> Response {
        switch request.path {
        case "/socket":
            return Response(webSocket: try state.acceptWebSocket(request))
        case "/sockets":
            return Response("\(state.getWebSockets().count)")
        case "/closes":
            return Response((try await state.storage.get("closes", as: [String].self) ?? []).joined(separator: "\n"))
        default:
            return Response("Not found", status: .notFound)
        }
    }

    func webSocketMessage(_ socket: WebSocket, _ message: WebSocketMessage) async throws {
        if case .text(let text) = message { try socket.send("echo \(text)") }
    }

    func webSocketClose(_ socket: WebSocket, code: Int, reason: String, wasClean: Bool) async throws {
        var closes = try await state.storage.get("closes", as: [String].self) ?? []
        closes.append("\(code)|\(reason)|\(wasClean)")
        try state.storage.put("closes", closes)
    }
}

/// `/probe/NAME/PATH` reaches the ``SocketProbe`` NAME at `/PATH`.
let probeApp = DurableApplication(
    classes: [DurableObjectClass(SocketProbe.self)],
    configuration: singleClassConfiguration(script: "probes", binding: "PROBES", className: "SocketProbe"),
    worker: Worker { request, env in
        try await forwardByName(request, after: "/probe/", to: env.namespace("PROBES"))
    })

extension LocalCluster {
    /// Starts a cluster of the probe app.
    static func probes(nodes: Int = 1) async throws -> LocalCluster {
        try await LocalCluster.start(app: probeApp, nodes: nodes, configuration: probeApp.configuration)
    }

    /// What probe `name` answers at `path`, asked through the gateway's HTTP bridge.
    func probe(_ name: String, _ path: String) async throws -> String {
        try await HTTPTestClient.send("\(url)/probe/\(name)\(path)").text
    }

    /// Opens a socket to probe `name` and waits until it answers a message.
    func openProbeSocket(_ name: String) async -> TestWebSocket {
        let socket = TestWebSocket("ws://127.0.0.1:\(httpPort!)/probe/\(name)/socket")
        socket.send("hi")
        #expect(await socket.next() == "echo hi")
        return socket
    }
}

@Suite("WebSocket close events and stale sockets", .timeLimit(.minutes(2)))
struct WebSocketLifecycleTests {
    @Test("the client's close code and reason reach webSocketClose; a dropped connection arrives as 1006")
    func closeCodeAndReason() async throws {
        try await withLocalCluster(app: probeApp, nodes: 1, configuration: probeApp.configuration) { cluster in
            let socket = await cluster.openProbeSocket("codes")
            socket.close(code: 4001, reason: "done here")
            _ = try await socket.closed()
            #expect(try await eventually { try await cluster.probe("codes", "/closes") == "4001|done here|true" })

            // A client that goes away without a close frame.
            let raw = try await RawSocket.connect(port: cluster.httpPort!)
            await raw.send(
                Array(
                    ("GET /probe/codes/socket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                        + "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        + "Sec-WebSocket-Version: 13\r\n\r\n").utf8))
            let answer = String(decoding: await raw.receive(minimum: 12), as: UTF8.self)
            #expect(answer.hasPrefix("HTTP/1.1 101"), "\(answer)")
            #expect(try await eventually { try await cluster.probe("codes", "/sockets") == "1" })
            raw.disconnect()
            #expect(
                try await eventually {
                    try await cluster.probe("codes", "/closes") == "4001|done here|true\n1006||false"
                })
            #expect(try await cluster.probe("codes", "/sockets") == "0")
        }
    }

    @Test("sockets of a gateway that restarted are closed (1006) and no longer listed")
    func gatewayRestart() async throws {
        try await withLocalCluster(app: probeApp, nodes: 2, configuration: probeApp.configuration) { cluster in
            var sockets: [TestWebSocket] = []
            for name in ["a", "b", "c"] {
                sockets.append(await cluster.openProbeSocket(name))
                sockets.append(await cluster.openProbeSocket(name))
            }
            #expect(try await cluster.probe("a", "/sockets") == "2")
            try await cluster.restartGateway()
            for socket in sockets { _ = try? await socket.closed() }
            let lost = "1006|The gateway that held this WebSocket's connection stopped.|false"
            for name in ["a", "b", "c"] {
                #expect(try await eventually { try await cluster.probe(name, "/sockets") == "0" })
                #expect(try await cluster.probe(name, "/closes") == "\(lost)\n\(lost)")
            }
            // Sockets opened through the new gateway are kept by the next sweep.
            let fresh = await cluster.openProbeSocket("a")
            try await cluster.restartNode(0)
            try await cluster.restartNode(1)
            fresh.send("still")
            #expect(await fresh.next() == "echo still")
            #expect(try await cluster.probe("a", "/sockets") == "1")
            fresh.close()
        }
    }

    @Test("a close the object could not take when the client left (node down) reaches it when the node is back")
    func closeRetriedUntilDelivered() async throws {
        try await withLocalCluster(app: probeApp, nodes: 1, configuration: probeApp.configuration) { cluster in
            let socket = await cluster.openProbeSocket("retry")
            await cluster.stopNode(0)
            socket.close(code: 4002, reason: "leaving while the node is away")
            _ = try await socket.closed()
            #expect(await eventually { cluster.gateway.pendingWebSocketCloses == 1 })
            try await cluster.startNode(0)
            #expect(
                try await eventually {
                    try await cluster.probe("retry", "/closes") == "4002|leaving while the node is away|true"
                })
            #expect(try await cluster.probe("retry", "/sockets") == "0")
            #expect(await eventually { cluster.gateway.pendingWebSocketCloses == 0 })
        }
    }
}
