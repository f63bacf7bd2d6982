import DurableObjects
import DurableObjectsTesting
import Foundation
import Synchronization
import TestSupport
import Testing

/// Shared coordination between tests and the objects they drive: latches and execution logs by name.
enum Board {
    private static let latches = Mutex<[String: Latch]>([:])
    private static let logs = Mutex<[String: [String]]>([:])
    private static let counters = Mutex<[String: Int]>([:])

    static func latch(_ name: String) -> Latch {
        latches.withLock { latches in
            if let latch = latches[name] { return latch }
            let latch = Latch()
            latches[name] = latch
            return latch
        }
    }

    static func log(_ name: String, _ entry: String) { logs.withLock { $0[name, default: []].append(entry) } }
    static func entries(_ name: String) -> [String] { logs.withLock { $0[name] ?? [] } }

    /// Increments and returns the counter `name`.
    static func next(_ name: String) -> Int {
        counters.withLock { counters in
            counters[name, default: 0] += 1
            return counters[name]!
        }
    }
    static func count(_ name: String) -> Int { counters.withLock { $0[name] ?? 0 } }
}

/// A test object whose behaviour is chosen by the request path; `tag` query items name latches and logs on the
/// ``Board``.
actor Probe: DurableObject {
    nonisolated let state: DurableObjectState
    let env: Environment
    let instance: Int
    var memory = 0

    init(state: DurableObjectState, env: Environment) {
        self.state = state
        self.env = env
        instance = Board.next("instances:\(state.id)")
        if let name = state.id.name, name.hasPrefix("slow-start:") {
            state.blockConcurrencyWhile { [self] in
                await Board.latch(name).wait()
                await self.markLoaded()
            }
        }
        if let name = state.id.name, name.hasPrefix("failing-start:") {
            state.blockConcurrencyWhile { throw ProbeError.startFailed }
        }
    }

    enum ProbeError: Error { case startFailed, requested }

    private var loaded = false
    func markLoaded() { loaded = true }

    func fetch(_ request: Request) async throws -> Response {
        let tag = request.queryItems.first { $0.name == "tag" }?.value ?? ""
        switch request.path {
        case "/increment":
            let value = (try await state.storage.get("count", as: Int.self) ?? 0) + 1
            try state.storage.put("count", value)
            return Response("\(value)")
        case "/count":
            return Response("\(try await state.storage.get("count", as: Int.self) ?? 0)")
        case "/instance":
            return Response("\(instance)")
        case "/memory":
            memory += 1
            return Response("\(memory)")
        case "/loaded":
            return Response("\(loaded)")
        case "/log":
            Board.log(tag, "ran \(request.text())")
            return Response("logged")
        case "/block":
            // Holds the input gate until the latch opens: later requests queue.
            Board.log(tag, "ran \(request.text())")
            try await state.blockConcurrencyWhile { await Board.latch(tag).wait() }
            return Response("unblocked")
        case "/throw-in-block":
            try await state.blockConcurrencyWhile { throw ProbeError.requested }
            return Response("unreachable")
        case "/wait-in-block":
            try await state.blockConcurrencyWhile { await Board.latch(tag).wait() }
            return Response("finished")
        case "/put":
            try state.storage.put("x", request.text())
            return Response("stored")
        case "/wait-then-put":
            // Suspends (input gate open) until the latch opens, then writes.
            await Board.latch(tag).wait()
            try state.storage.put("x", request.text())
            return Response("stored")
        case "/x":
            return Response(try await state.storage.get("x", as: String.self) ?? "none")
        case "/put-unconfirmed":
            try state.storage.put("x", request.text(), options: StorageWriteOptions(allowUnconfirmed: true))
            return Response("stored")
        case "/read-held":
            // A read that reaches RocksDB (the key is never cached) while the test holds reads.
            let allow = request.text() == "allowConcurrency"
            _ = try await state.storage.get(
                "never-written", as: Int.self, options: StorageReadOptions(allowConcurrency: allow, noCache: true))
            Board.log(tag, "read finished")
            return Response("read")
        case "/put-then-call":
            try state.storage.put("x", "before call")
            let other = try env.namespace("PROBE").getByName(request.text())
            return try await other.fetch("http://probe/log?tag=\(tag)", method: .post, body: .text("called"))
        default:
            return Response("Not found", status: .notFound)
        }
    }
}

/// A runtime serving ``Probe`` as `PROBE`, with short timeouts unless told otherwise.
func makeRuntime(_ configuration: RuntimeConfiguration = RuntimeConfiguration(idleTimeout: .seconds(60))) throws
    -> DurableTestRuntime
{
    try DurableTestRuntime(
        classes: [DurableObjectClass(Probe.self)], bindings: ["PROBE": "Probe"], configuration: configuration)
}

/// A unique object name for one test.
func uniqueName(_ prefix: String = "object") -> String { "\(prefix)-\(UUID().uuidString)" }

extension DurableObjectStub {
    /// Sends a request to `path` and returns the body text.
    func text(_ path: String, body: String = "") async throws -> String {
        try await fetch("http://probe\(path)", method: .post, body: .text(body)).text()
    }
}

/// Runs `body` with a fresh runtime serving ``Probe``, and closes the runtime afterwards (also when it throws).
func withRuntime<T>(
    _ configuration: RuntimeConfiguration = RuntimeConfiguration(idleTimeout: .seconds(60)),
    _ body: (DurableTestRuntime) async throws -> T
) async throws -> T {
    let runtime = try makeRuntime(configuration)
    do {
        let value = try await body(runtime)
        await runtime.close()
        return value
    } catch {
        await runtime.close()
        throw error
    }
}
