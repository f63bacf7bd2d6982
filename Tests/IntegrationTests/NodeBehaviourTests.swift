import DurableClient
import DurableObjects
import DurableWire
import Foundation
import Synchronization
import TestSupport
import Testing

extension ProcessTests {
    /// Drives a `durable-test-server` node (its DIAGNOSTIC binding sleeps, blocks and counts its runs).
    @Suite("Storage node: concurrency, deadlines, cancellation, bad input (real processes)")
    struct NodeBehaviourTests {
        func withDiagnosticNode<T>(_ body: (ServerProcess, DurableClient, DurableObjectNamespace) async throws -> T)
            async throws -> T
        {
            let folder = TemporaryDirectory("node-diag")
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("data"), executable: BuiltExecutable.testServer)
            let client = DurableClient(
                host: "127.0.0.1", port: node.port, connections: 1, credentials: TestKeys.cluster)
            do {
                let value = try await body(node, client, try await client.namespace("DIAGNOSTIC"))
                await client.close()
                #expect(await node.stop() == 0)
                return value
            } catch {
                await client.close()
                await node.stop()
                throw error
            }
        }

        @Test("concurrent calls on one connection are answered out of order")
        func outOfOrder() async throws {
            try await withDiagnosticNode { _, client, diagnostic throws in
                let order = Recorder<Int>()
                // A slow call is in flight on the connection (its object is active on the node)…
                let slow = Task {
                    _ = try await diagnostic.getByName("slow").fetch("http://d/sleep?ms=20000")
                    order.append(20000)
                }
                #expect(await eventually { (try? await client.stats().activeObjects) == 1 })
                // …and a fast one sent after it is answered first, while the slow one still runs.
                #expect(try await diagnostic.getByName("fast").fetch("http://d/sleep?ms=0").text() == "slept 0")
                order.append(0)
                #expect(order.values == [0], "the call sent last was answered first")
                slow.cancel()
                _ = await slow.result
            }
        }

        @Test("a call past its deadline is DEADLINE_EXCEEDED, and a queued one that expired never runs")
        func deadlines() async throws {
            try await withDiagnosticNode { _, client, diagnostic in
                let stub = diagnostic.getByName("deadline")
                let slow = await #expect(throws: DurableObjectError.self) {
                    try await client.invoke(
                        namespaceID: diagnostic.namespaceID, id: stub.id,
                        request: Request(url: "http://d/sleep?ms=3000"),
                        timeout: .milliseconds(200))
                }
                #expect(slow?.code == .deadlineExceeded)

                let arrived = try await client.stats().invocations
                let blocker = Task { try await stub.fetch("http://d/block?latch=deadline-gate") }
                // The node counts the blocker on arrival; as the object is idle, the blocker's first turn (which
                // closes the gate) comes before any later request is delivered.
                #expect(await eventually { (try? await client.stats().invocations) ?? 0 > arrived })
                let queued = await #expect(throws: DurableObjectError.self) {
                    try await client.invoke(
                        namespaceID: diagnostic.namespaceID, id: stub.id, request: Request(url: "http://d/record"),
                        timeout: .milliseconds(200))
                }
                #expect(queued?.code == .deadlineExceeded)
                let other = diagnostic.getByName("releaser")
                #expect(try await other.fetch("http://d/release?latch=deadline-gate").text() == "released")
                #expect(try await blocker.value.text() == "blocked until deadline-gate")
                #expect(try await stub.fetch("http://d/runs").text() == "0", "the expired request never ran")
            }
        }

        @Test("cancelling a call stops waiting at once and the node keeps serving")
        func cancellation() async throws {
            try await withDiagnosticNode { _, client, diagnostic in
                let arrived = try await client.stats().invocations
                let call = Task { try await diagnostic.getByName("cancel").fetch("http://d/sleep?ms=3600000") }
                // Cancelled once the node has the call, not before it was sent.
                #expect(await eventually { (try? await client.stats().invocations) ?? 0 > arrived })
                let started = ContinuousClock.now
                call.cancel()
                let result = await call.result
                #expect(ContinuousClock.now - started < .seconds(120), "the caller stopped waiting for the hour")
                #expect(throws: DurableObjectError(.cancelled, "The call was cancelled.")) { try result.get() }
                #expect(try await diagnostic.getByName("cancel").fetch("http://d/record").text() == "1")
            }
        }

        @Test("bad input gets a clear error or a closed connection, and the node keeps serving others")
        func badInput() async throws {
            try await withDiagnosticNode { node, client, diagnostic in
                let healthy = diagnostic.getByName("healthy")
                #expect(try await healthy.fetch("http://d/record").text() == "1")

                // Random bytes, then end of stream: the node closes the connection (with a go-away when a length
                // was read), whatever the bytes were.
                var generator = SystemRandomNumberGenerator()
                let random = try await RawSocket.connect(port: node.port)
                await random.send((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })
                random.shutdownWrite()
                _ = await random.receiveAll()

                // A length header over the maximum (16 MiB).
                let huge = try await RawSocket.connect(port: node.port)
                await huge.send([0x7F, 0xFF, 0xFF, 0xFF])
                let hugeReply = try #require(RawSocket.firstFrame(await huge.receiveAll()))
                #expect(hugeReply.goAway.reason.contains("over the maximum"))

                // A truncated frame: the header promises more than ever arrives, then the client hangs up; the node
                // closes its side.
                let truncated = try await RawSocket.connect(port: node.port)
                await truncated.send([0, 0, 0, 100, 1, 2, 3])
                truncated.shutdownWrite()
                _ = await truncated.receiveAll()

                // A frame that does not decode.
                let garbage = try await RawSocket.connect(port: node.port)
                await garbage.send([0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF])
                let garbageReply = try #require(RawSocket.firstFrame(await garbage.receiveAll()))
                #expect(garbageReply.goAway.reason.contains("does not decode"))

                // An unknown method.
                let unknown = await #expect(throws: DurableObjectError.self) {
                    let _: Durable_V1_HealthResponse = try await client.call(
                        "durable.v1.Nope/Nothing", Durable_V1_HealthRequest())
                }
                #expect(unknown?.message.contains("durable.v1.Nope/Nothing") == true)

                // An invalid object id: wrong length, and right length with a bad MAC.
                for bytes in [[UInt8](repeating: 1, count: 5), [UInt8](repeating: 1, count: 32)] {
                    let message = Durable_V1_InvokeRequest.with {
                        $0.namespaceID = diagnostic.namespaceID
                        $0.objectID = Data(bytes)
                        $0.request = Request(url: "http://d/runs").wire
                    }
                    let invalid = await #expect(throws: DurableObjectError.self) {
                        let _: Durable_V1_InvokeResponse = try await client.call("durable.v1.Objects/Invoke", message)
                    }
                    #expect(invalid?.code == .invalidArgument)
                    #expect(invalid?.message == "Durable Object ID is not valid for this namespace.")
                }

                // An unknown namespace, and an invalid HTTP method.
                let noNamespace = await #expect(throws: DurableObjectError.self) {
                    try await client.invoke(
                        namespaceID: "Nope", id: healthy.id, request: Request(url: "/"), timeout: .seconds(5))
                }
                #expect(noNamespace?.code == .notFound)

                // The node kept serving throughout.
                #expect(try await healthy.fetch("http://d/record").text() == "2")
                #expect(try await client.health().serving)
            }
        }
    }
}
