import DurableClient
import DurableObjects
import DurableWire
import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import Synchronization

/// One kind of call the load generator repeats.
protocol Operation: Sendable {
    /// Makes one call meant to start at `intended`; throws what the call failed with.
    func run(intended: ContinuousClock.Instant) async throws
    /// Whether the operation records latencies itself (per delivery) rather than per call.
    var recordsItsOwnLatency: Bool { get }
    /// Touches every object once (so that reads find cached values and the first activation is not measured).
    func prime(callers: Int) async throws
    /// Releases connections.
    func close() async
}

extension Operation {
    var recordsItsOwnLatency: Bool { false }

    func prime(callers: Int) async throws {}
}

/// Runs `body` for every index in `0..<count` with at most `width` in flight.
func forEach(_ count: Int, width: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        var next = 0
        while next < min(width, count) {
            let index = next
            group.addTask { try await body(index) }
            next += 1
        }
        while try await group.next() != nil, next < count {
            let index = next
            group.addTask { try await body(index) }
            next += 1
        }
        try await group.waitForAll()
    }
}

// MARK: RPC (DurableClient)

/// Calls through the RPC protocol with ``DurableClient``, to a gateway or a node.
struct RPCOperation: Operation {
    let client: DurableClient
    let workload: Workload
    let stubs: [DurableObjectStub]
    let timeout: Duration

    private static let increment = Request(url: "http://counter/increment", method: .post)
    private static let read = Request(url: "http://counter/", method: .get)

    /// - Parameter servers: the gateways (or node) to call; with several, calls move to the next one when the one in
    ///   use is lost.
    init(
        servers: [DurableClient.Endpoint], connections: Int, credentials: RPCKey?, tls: RPCClientTLS? = nil,
        workload: Workload, objects: Int, prefix: String, binding: String, timeout: Duration
    ) async throws {
        client = DurableClient(
            endpoints: servers, connections: connections, defaultTimeout: timeout, credentials: credentials, tls: tls)
        self.workload = workload
        self.timeout = timeout
        switch workload {
        case .noop:
            stubs = []
        case .hot, .increment, .read:
            let namespace = try await client.namespace(binding)
            stubs =
                workload == .hot
                ? [namespace.getByName("\(prefix)-hot")] : (0..<objects).map { namespace.getByName("\(prefix)-\($0)") }
        case .broadcast:
            throw LoadError("The broadcast workload runs over WebSockets: use --http.")
        }
    }

    func run(intended: ContinuousClock.Instant) async throws {
        switch workload {
        case .noop:
            _ = try await client.health()
        case .hot, .increment:
            let response = try await stubs[Int.random(in: 0..<stubs.count)].fetch(Self.increment)
            guard response.status == .ok else {
                throw HTTPStatusError(status: response.status.code, body: response.text())
            }
        case .read:
            let response = try await stubs[Int.random(in: 0..<stubs.count)].fetch(Self.read)
            guard response.status == .ok else {
                throw HTTPStatusError(status: response.status.code, body: response.text())
            }
        case .broadcast:
            break
        }
    }

    func prime(callers: Int) async throws {
        let stubs = self.stubs
        try await forEach(stubs.count, width: max(1, callers)) { index in
            _ = try await stubs[index].fetch(Self.read)
        }
    }

    /// The target's counters, when it is a node (a gateway does not keep them).
    func serverStats() async -> Durable_V1_StatsResponse? {
        try? await client.stats()
    }

    func close() async { await client.close() }
}

// MARK: HTTP (through the bridge)

/// Calls the example app's worker over HTTP/1.1 with keep-alive: one connection per call in flight, reused.
final class HTTPOperation: Operation {
    let host: String
    let port: Int
    let workload: Workload
    let paths: [String]
    private let idle = Mutex<[TestClient]>([])
    private let all = Mutex<[TestClient]>([])

    init(host: String, port: Int, workload: Workload, objects: Int, prefix: String) throws {
        self.host = host
        self.port = port
        self.workload = workload
        switch workload {
        case .noop: paths = ["/ping"]
        case .hot: paths = ["/counters/\(prefix)-hot/increment"]
        case .increment: paths = (0..<objects).map { "/counters/\(prefix)-\($0)/increment" }
        case .read: paths = (0..<objects).map { "/counters/\(prefix)-\($0)/" }
        case .broadcast: throw LoadError("internal: the broadcast workload has its own driver")
        }
    }

    private func client() -> TestClient {
        if let client = idle.withLock({ $0.popLast() }) { return client }
        let client = TestClient(host: host, port: port, configuration: .init(timeout: .seconds(30)))
        client.connect()
        all.withLock { $0.append(client) }
        return client
    }

    private func get(_ path: String) async throws {
        let client = client()
        let method: HTTPRequest.Method = path.hasSuffix("/increment") ? .post : .get
        let response: TestClient.Response
        do {
            response = try await client.execute(.init(path, method: method, authority: "\(host):\(port)"))
        } catch {
            // The connection is in an unknown state: drop it.
            try? await client.shutdown()
            throw error
        }
        idle.withLock { $0.append(client) }
        guard response.status == .ok else {
            throw HTTPStatusError(
                status: response.status.code, body: response.body.map { String(buffer: $0) } ?? "")
        }
    }

    func run(intended: ContinuousClock.Instant) async throws {
        try await get(paths[Int.random(in: 0..<paths.count)])
    }

    func prime(callers: Int) async throws {
        guard workload == .read || workload == .increment else { return }
        let paths = self.paths.map { $0.replacingOccurrences(of: "/increment", with: "/") }
        try await forEach(paths.count, width: max(1, callers)) { [self] index in try await get(paths[index]) }
    }

    func close() async {
        for client in all.withLock({ $0 }) { try? await client.shutdown() }
    }
}

/// A setup problem, reported in words.
struct LoadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
