@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import TestSupport
import Testing

/// An upgrade request as the gateway hands it to an object, for the socket `socketID`.
func upgrade(_ socketID: String) -> Request {
    Request(
        url: "http://room/websocket",
        headers: [.upgrade: "websocket", HTTPField.Name("X-Durable-WebSocket-Id")!: socketID])
}

@Suite("An object's WebSockets (in process)")
struct WebSocketTableTests {
    @Test("tags select sockets, attachments round-trip and are bounded, and a plain request cannot be accepted")
    func tagsAndAttachments() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state throws in
                let red = try state.acceptWebSocket(upgrade("s1"), tags: ["red"])
                _ = try state.acceptWebSocket(upgrade("s2"), tags: ["blue"])
                _ = try state.acceptWebSocket(upgrade("s3"), tags: ["red", "blue"])
                #expect(state.getWebSockets().map(\.id) == ["s1", "s2", "s3"])
                #expect(state.getWebSockets(tag: "red").map(\.id) == ["s1", "s3"])
                try red.serializeAttachment(["name": "alice"])
                #expect(try red.deserializeAttachment(as: [String: String].self) == ["name": "alice"])
                #expect(throws: DurableObjectError.self) {
                    try red.serializeAttachment(String(repeating: "x", count: 3000))
                }
                #expect(throws: DurableObjectError.self) {
                    _ = try state.acceptWebSocket(Request(url: "http://room/websocket"))
                }
            }
            // The table outlives the instance (hibernation).
            #expect(try await eventually { try runtime.evict(stub) })
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state throws in
                #expect(state.getWebSockets(tag: "blue").map(\.id) == ["s2", "s3"])
                let red = state.getWebSockets(tag: "red").first
                #expect(try red?.deserializeAttachment(as: [String: String].self) == ["name": "alice"])
            }
        }
    }

    @Test("an object holds at most 32,768 sockets; one more is refused with a clear error")
    func socketLimit() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let refused = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state -> String? in
                for index in 0..<WebSocketLimits.maximumSocketsPerObject {
                    _ = try state.acceptWebSocket(upgrade("socket-\(index)"))
                }
                do {
                    _ = try state.acceptWebSocket(upgrade("one-too-many"))
                    return nil
                } catch let error as DurableObjectError {
                    return error.message
                }
            }
            #expect(
                refused
                    == "This Durable Object already holds 32768 WebSockets, the most one object may accept.")
        }
    }
}
