import DurableWire
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import TestSupport
import Testing

@Suite("RPC connection")
struct RPCTests {
    @Test("calls round trip with metadata, and errors keep their code and flags")
    func roundTrip() async throws {
        try await withServer { _, port, _ in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await connection.call("test/echo", payload: [1, 2, 3]) == [1, 2, 3])
            #expect(
                try await connection.call("test/metadata", payload: [], metadata: ["x-test": "hi"]) == Array("hi".utf8))
            let error = await #expect(throws: RPCError.self) { try await connection.call("test/fail", payload: []) }
            #expect(error?.code == .resourceExhausted)
            #expect(error?.message == "too busy")
            #expect(error?.retryable == true)
            #expect(error?.overloaded == true)
            let unknown = await #expect(throws: RPCError.self) { try await connection.call("nope", payload: []) }
            #expect(unknown?.code == .unimplemented)
            await connection.close()
        }
    }

    @Test("many calls share one connection and replies come back out of order")
    func multiplexing() async throws {
        try await withServer { _, port, handler in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            // A call that waits for the test, then one sent after it on the same connection: the second is
            // answered while the first is still running.
            let held = Task { try await connection.call("test/hold", payload: Array("first".utf8)) }
            #expect(await eventually { handler.started.load(ordering: .relaxed) == 1 })
            #expect(try await connection.call("test/echo", payload: [1]) == [1])
            #expect(handler.latch("first").waiterCount == 1, "the first call still runs")
            handler.latch("first").open()
            #expect(try await held.value == Array("first".utf8))
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<500 {
                    group.addTask {
                        let reply = try await connection.call("test/echo", payload: Array("\(index)".utf8))
                        #expect(reply == Array("\(index)".utf8))
                    }
                }
                try await group.waitForAll()
            }
            await connection.close()
        }
    }

    @Test("a call past its deadline gets DEADLINE_EXCEEDED and the server stops it")
    func deadline() async throws {
        try await withServer { _, port, handler in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let error = await #expect(throws: RPCError.self) {
                try await connection.call("test/wait", payload: [], timeout: .milliseconds(100))
            }
            #expect(error?.code == .deadlineExceeded)
            #expect(await eventually { handler.cancelled.load(ordering: .relaxed) == 1 })
            #expect(try await connection.call("test/echo", payload: [9]) == [9], "the connection still works")
            await connection.close()
        }
    }

    @Test("cancelling the caller's task cancels the call on the server")
    func cancellation() async throws {
        try await withServer { _, port, handler in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let call = Task { try await connection.call("test/wait", payload: []) }
            #expect(await eventually { handler.started.load(ordering: .relaxed) == 1 })
            call.cancel()
            let result = await call.result
            #expect(throws: RPCError.cancelled) { try result.get() }
            #expect(await eventually { handler.cancelled.load(ordering: .relaxed) == 1 })
            await connection.close()
        }
    }

    @Test("a cancelled call no longer counts as running: a graceful shutdown does not wait for it")
    func cancelledCallEndsForShutdown() async throws {
        let handler = TestHandler()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler)
        let port = try await server.start()
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        let call = Task { try await connection.call("test/wait", payload: []) }
        #expect(await eventually { handler.started.load(ordering: .relaxed) == 1 })
        call.cancel()
        #expect(await eventually { handler.cancelled.load(ordering: .relaxed) == 1 })
        // A grace period of an hour: a shutdown that waited for the cancelled call would not end within the test.
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(3600)) }
        #expect(await finishes(shutdown, within: .seconds(120)), "shutdown waited for a call that was cancelled")
        await connection.close()
    }

    @Test("a streaming call delivers its messages in order, then its reply")
    func streaming() async throws {
        try await withServer { _, port, _ in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let received = Mutex<[String]>([])
            let reply = try await connection.callStreaming("test/stream", payload: Array("50".utf8)) { message in
                received.withLock { $0.append(String(decoding: message, as: UTF8.self)) }
            }
            #expect(String(decoding: reply, as: UTF8.self) == "done")
            #expect(received.withLock { $0 } == (1...50).map(String.init))
            // An ordinary call on the same connection is unaffected.
            #expect(try await connection.call("test/echo", payload: [7]) == [7])
            await connection.close()
        }
    }

    @Test("an oversized frame is refused from its header with a go-away naming it; other connections keep working")
    func oversizedFrame() async throws {
        try await withServer(maximumFrameSize: 1024) { _, port, _ in
            let healthy = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let raw = try await RawSocket.connect(port: port)
            await raw.send([0x00, 0x10, 0x00, 0x00])  // announces 1 MiB; the body never comes
            let reply = await raw.receiveAll()
            let frame = try #require(RawSocket.firstFrame(reply))
            #expect(frame.goAway.reason.contains("over the maximum of 1024 bytes"), "\(frame.goAway.reason)")
            #expect(try await healthy.call("test/echo", payload: [1]) == [1])
            await healthy.close()
        }
    }

    @Test("a frame that does not decode closes that connection with a clear reason")
    func malformedFrame() async throws {
        try await withServer { _, port, _ in
            let raw = try await RawSocket.connect(port: port)
            await raw.send([0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
            let frame = try #require(RawSocket.firstFrame(await raw.receiveAll()))
            #expect(frame.goAway.reason.contains("does not decode"), "\(frame.goAway.reason)")
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await connection.call("test/echo", payload: [2]) == [2])
            await connection.close()
        }
    }

    @Test(
        "a frame started and never finished closes that connection after the frame timeout, with the reason",
        .timeLimit(.minutes(1)))
    func stalledFrame() async throws {
        try await withServer(frameTimeout: .milliseconds(400)) { _, port, _ in
            let healthy = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let raw = try await RawSocket.connect(port: port)
            // A header announcing 100 bytes, and 10 of them; then nothing (the socket stays open).
            await raw.send([0, 0, 0, 100] + [UInt8](repeating: 1, count: 10))
            let frame = try #require(RawSocket.firstFrame(await raw.receiveAll()))
            #expect(frame.goAway.reason.contains("frame incomplete after"), "\(frame.goAway.reason)")
            // A connection that is only idle (no partial frame) is left alone.
            #expect(try await healthy.call("test/echo", payload: [3]) == [3])
            await healthy.close()
        }
    }

    @Test("call id 0, and the id of a call still running, break the protocol: the connection gets a go-away naming it")
    func callIDs() async throws {
        try await withServer { _, port, handler in
            func call(_ id: UInt64, _ method: String, _ payload: String = "") throws -> [UInt8] {
                var frame = Durable_V1_Frame()
                frame.callID = id
                frame.call = Durable_V1_Call.with {
                    $0.method = method
                    $0.payload = Data(payload.utf8)
                }
                return try RawSocket.encode(frame)
            }
            let zero = try await RawSocket.connect(port: port)
            await zero.send(try call(0, "test/echo"))
            let reserved = try #require(RawSocket.firstFrame(await zero.receiveAll()))
            #expect(reserved.goAway.reason == "call id 0 is reserved: number calls from 1")
            #expect(handler.started.load(ordering: .relaxed) == 0, "the call never ran")

            let twice = try await RawSocket.connect(port: port)
            await twice.send(try call(5, "test/hold", "held") + call(5, "test/echo", "again"))
            let reply = try #require(RawSocket.firstFrame(await twice.receiveAll()))
            #expect(reply.goAway.reason == "call id 5 is already in use by a call in flight on this connection")
            #expect(reply.goAway.lastCallID == 5)
            handler.latch("held").open()
            // Other connections are unaffected.
            let healthy = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            #expect(try await healthy.call("test/echo", payload: [4]) == [4])
            await healthy.close()
        }
    }

    @Test("the server answers pings")
    func ping() async throws {
        try await withServer { _, port, _ in
            let raw = try await RawSocket.connect(port: port)
            var frame = Durable_V1_Frame()
            frame.ping = Durable_V1_Ping.with { $0.nonce = 42 }
            await raw.send(try RawSocket.encode(frame))
            let pong = try #require(RawSocket.firstFrame(await raw.receive(minimum: 8)))
            #expect(pong.pong.nonce == 42)
        }
    }

    @Test("graceful shutdown: running calls finish, new calls are refused as retryable, clients see go-away")
    func gracefulShutdown() async throws {
        let handler = TestHandler()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler)
        let port = try await server.start()
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        let running = Task { try await connection.call("test/hold", payload: Array("running".utf8)) }
        #expect(await eventually { handler.started.load(ordering: .relaxed) == 1 })
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(60)) }
        #expect(await eventually { !connection.isUsable }, "the client was told to go away")
        handler.latch("running").open()
        #expect(try await running.value == Array("running".utf8), "the running call finished")
        let refused = await #expect(throws: RPCError.self) { try await connection.call("test/echo", payload: []) }
        #expect(refused?.code == .unavailable)
        #expect(refused?.retryable == true)
        await shutdown.value
        await #expect(throws: RPCError.self) { try await RPCConnection.connect(host: "127.0.0.1", port: port) }
    }

    @Test("as a service in a group: it serves until graceful shutdown, then drains the running call and stops")
    func runsAsService() async throws {
        let handler = TestHandler()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler, shutdownGracePeriod: .seconds(60))
        let group = ServiceGroup(
            configuration: .init(services: [server], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        #expect(await eventually { server.port != nil })
        let port = try #require(server.port)
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        let call = Task { try await connection.call("test/hold", payload: Array("service".utf8)) }
        #expect(await eventually { handler.started.load(ordering: .relaxed) == 1 })
        await group.triggerGracefulShutdown()
        #expect(await eventually { !connection.isUsable }, "the client was told to go away")
        handler.latch("service").open()
        #expect(try await call.value == Array("service".utf8), "the running call finished")
        try await running.value
        await #expect(throws: RPCError.self) { try await RPCConnection.connect(host: "127.0.0.1", port: port) }
    }

    @Test("when the grace period runs out, shutdown closes the connections and the unfinished call fails retryably")
    func gracePeriodRunsOut() async throws {
        let handler = TestHandler()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler)
        let port = try await server.start()
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        let running = Task { try await connection.call("test/hold", payload: Array("never".utf8)) }
        #expect(await eventually { handler.started.load(ordering: .relaxed) == 1 })
        await server.shutdown(gracePeriod: .milliseconds(200))
        let error = await #expect(throws: RPCError.self) { try await running.value }
        #expect(error?.code == .unavailable, "\(String(describing: error))")
        #expect(error?.retryable == true)
        #expect(handler.latch("never").waiterCount <= 1, "the call never finished on its own")
        handler.latch("never").open()
        await connection.close()
    }

    @Test("connecting to a closed port is a retryable UNAVAILABLE naming the address")
    func connectFailure() async throws {
        let error = await #expect(throws: RPCError.self) { try await RPCConnection.connect(host: "127.0.0.1", port: 1) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("127.0.0.1:1") == true)
    }
}
