import DurableWire
import Foundation
import Synchronization

/// A handler for tests: `echo` returns the payload; `sleep` waits the number of milliseconds in the payload, then
/// echoes; `hold` waits until the test opens the latch named by the payload (``latch(_:)``), then echoes; `wait` waits
/// until cancelled and records that; `fail` throws an RPCError.
public final class TestHandler: RPCHandler {
    private let latches = Mutex<[String: Latch]>([:])

    /// Creates a handler.
    public init() {}

    /// The latch `test/hold` calls with payload `name` wait on.
    public func latch(_ name: String) -> Latch {
        latches.withLock { latches in
            if let latch = latches[name] { return latch }
            let latch = Latch()
            latches[name] = latch
            return latch
        }
    }

    /// How many calls ended cancelled.
    public let cancelled = Atomic<Int>(0)
    /// How many calls started.
    public let started = Atomic<Int>(0)

    /// Serves `call`.
    public func handle(_ call: IncomingCall) async throws -> [UInt8] {
        started.add(1, ordering: .relaxed)
        switch call.method {
        case "test/echo":
            return call.payload
        case "test/sleep":
            let millis = Int(String(decoding: call.payload, as: UTF8.self)) ?? 0
            try await Task.sleep(for: .milliseconds(millis))
            return call.payload
        case "test/hold":
            await latch(String(decoding: call.payload, as: UTF8.self)).wait()
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

/// Runs `body` with an RPC server on a loopback port serving a fresh ``TestHandler``; shuts it down afterwards.
public func withServer<T>(
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

/// A server taking three keys: `cluster` may call everything, `admin` everything but `test/internal`, `client`
/// only `test/echo` and `test/sleep`.
public func withSecuredServer<T>(
    authenticationTimeout: Duration = .seconds(120), _ body: (Int, TestHandler) async throws -> T
) async throws -> T {
    let handler = TestHandler()
    let access = RPCAccessControl(keys: [AuthKeys.cluster, AuthKeys.admin, AuthKeys.client]) { method in
        switch method {
        case "test/internal": [.cluster]
        case "test/echo", "test/sleep": [.cluster, .admin, .client]
        default: [.cluster, .admin]
        }
    }
    let server = RPCServer(
        host: "127.0.0.1", port: 0, handler: handler,
        access: RPCAccessControl(
            keys: access.keys, authenticationTimeout: authenticationTimeout, roles: access.roles))
    let port = try await server.start()
    do {
        let value = try await body(port, handler)
        await server.shutdown(gracePeriod: .seconds(1))
        return value
    } catch {
        await server.shutdown(gracePeriod: .seconds(1))
        throw error
    }
}

/// The keys of ``withSecuredServer(authenticationTimeout:_:)``.
public enum AuthKeys {
    /// The cluster secret.
    public static let cluster = try! RPCKey("cluster-secret-for-tests-0001", role: .cluster)
    /// The admin token.
    public static let admin = try! RPCKey("admin-token-for-tests-0001", role: .admin)
    /// The API token.
    public static let client = try! RPCKey("api-token-for-tests-0001", role: .client)
}
