import DurableWire
import Foundation
import NIOCore
import NIOPosix
import Synchronization
import Testing
import WireTestSupport

/// A handler for tests: `echo` returns the payload; `sleep` waits the number of milliseconds in the payload, then
/// echoes; `wait` waits until cancelled and records that; `fail` throws an RPCError.
final class TestHandler: RPCHandler {
    let cancelled = Atomic<Int>(0)
    let started = Atomic<Int>(0)

    func handle(_ call: IncomingCall) async throws -> [UInt8] {
        started.add(1, ordering: .relaxed)
        switch call.method {
        case "test/echo":
            return call.payload
        case "test/sleep":
            let millis = Int(String(decoding: call.payload, as: UTF8.self)) ?? 0
            try await Task.sleep(for: .milliseconds(millis))
            return call.payload
        case "test/wait":
            do {
                try await Task.sleep(for: .seconds(3600))
            } catch {
                cancelled.add(1, ordering: .relaxed)
                throw error
            }
            return []
        case "test/fail":
            throw RPCError(.resourceExhausted, "too busy", retryable: true, overloaded: true)
        case "test/metadata":
            return Array((call.metadata["x-test"] ?? "").utf8)
        case "test/stream":
            // Streams the numbers 1...N (N in the payload), then answers "done".
            for number in 1...(Int(String(decoding: call.payload, as: UTF8.self)) ?? 0) {
                try await call.stream.send(Array("\(number)".utf8))
            }
            return Array("done".utf8)
        default:
            throw RPCError(.unimplemented, "no method \(call.method)")
        }
    }
}

func withServer<T>(
    maximumFrameSize: Int = defaultMaximumFrameSize, frameTimeout: Duration = .seconds(30),
    _ body: (RPCServer, Int, TestHandler) async throws -> T
) async throws -> T {
    let handler = TestHandler()
    let server = RPCServer(
        host: "127.0.0.1", port: 0, handler: handler, maximumFrameSize: maximumFrameSize, frameTimeout: frameTimeout)
    let port = try await server.start()
    do {
        let value = try await body(server, port, handler)
        await server.shutdown(gracePeriod: .seconds(1))
        return value
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
}

func eventually(timeout: Duration = .seconds(10), _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(2))
    }
    return condition()
}

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
        try await withServer { _, port, _ in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let order = Recorder()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for millis in [300, 200, 100, 0] {
                    group.addTask {
                        let reply = try await connection.call("test/sleep", payload: Array("\(millis)".utf8))
                        #expect(reply == Array("\(millis)".utf8))
                        order.append(millis)
                    }
                }
                try await group.waitForAll()
            }
            #expect(order.values == [0, 100, 200, 300], "the first call sent was answered last")
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
        let started = ContinuousClock.now
        await server.shutdown(gracePeriod: .seconds(30))
        #expect(ContinuousClock.now - started < .seconds(15), "shutdown waited for a call that was cancelled")
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
            let raw = try RawSocket(port: port)
            raw.send([0x00, 0x10, 0x00, 0x00])  // announces 1 MiB; the body never comes
            let reply = raw.receiveAll()
            let frame = try #require(RawSocket.firstFrame(reply))
            #expect(frame.goAway.reason.contains("over the maximum of 1024 bytes"), "\(frame.goAway.reason)")
            #expect(try await healthy.call("test/echo", payload: [1]) == [1])
            await healthy.close()
        }
    }

    @Test("a frame that does not decode closes that connection with a clear reason")
    func malformedFrame() async throws {
        try await withServer { _, port, _ in
            let raw = try RawSocket(port: port)
            raw.send([0, 0, 0, 3, 0xFF, 0xFF, 0xFF])
            let frame = try #require(RawSocket.firstFrame(raw.receiveAll()))
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
            let raw = try RawSocket(port: port)
            // A header announcing 100 bytes, and 10 of them; then nothing (the socket stays open).
            raw.send([0, 0, 0, 100] + [UInt8](repeating: 1, count: 10))
            let frame = try #require(RawSocket.firstFrame(raw.receiveAll()))
            #expect(frame.goAway.reason.contains("frame incomplete after"), "\(frame.goAway.reason)")
            // A connection that is only idle (no partial frame) is left alone.
            #expect(try await healthy.call("test/echo", payload: [3]) == [3])
            await healthy.close()
        }
    }

    @Test("the server answers pings")
    func ping() async throws {
        try await withServer { _, port, _ in
            let raw = try RawSocket(port: port)
            var frame = Durable_V1_Frame()
            frame.ping = Durable_V1_Ping.with { $0.nonce = 42 }
            raw.send(try RawSocket.encode(frame))
            let pong = try #require(RawSocket.firstFrame(raw.receive(minimum: 8)))
            #expect(pong.pong.nonce == 42)
        }
    }

    @Test("graceful shutdown: running calls finish, new calls are refused as retryable, clients see go-away")
    func gracefulShutdown() async throws {
        let handler = TestHandler()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler)
        let port = try await server.start()
        let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
        let running = Task { try await connection.call("test/sleep", payload: Array("300".utf8)) }
        #expect(await eventually { handler.started.load(ordering: .relaxed) == 1 })
        let shutdown = Task { await server.shutdown(gracePeriod: .seconds(5)) }
        #expect(try await running.value == Array("300".utf8), "the running call finished")
        #expect(await eventually { !connection.isUsable })
        let refused = await #expect(throws: RPCError.self) { try await connection.call("test/echo", payload: []) }
        #expect(refused?.code == .unavailable)
        #expect(refused?.retryable == true)
        await shutdown.value
        await #expect(throws: RPCError.self) { try await RPCConnection.connect(host: "127.0.0.1", port: port) }
    }

    @Test("connecting to a closed port is a retryable UNAVAILABLE naming the address")
    func connectFailure() async throws {
        let error = await #expect(throws: RPCError.self) { try await RPCConnection.connect(host: "127.0.0.1", port: 1) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("127.0.0.1:1") == true)
    }
}

/// A list that tasks append to.
final class Recorder: Sendable {
    private let storage = Mutex<[Int]>([])
    func append(_ value: Int) { storage.withLock { $0.append(value) } }
    var values: [Int] { storage.withLock { $0 } }
}
