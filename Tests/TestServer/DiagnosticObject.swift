import DurableObjects
import Foundation
import Synchronization

/// An object class for exercising a node from the outside (`durable-test-server node`, bound as `DIAGNOSTIC`):
/// it can take a chosen time, hold its input gate, and count how often it ran.
///
/// - `/sleep?ms=N`: waits N ms (the object takes other events meanwhile), then answers `slept N`.
/// - `/block?ms=N`: holds the input gate for N ms (`blockConcurrencyWhile`), so later requests queue.
/// - `/record`: adds one to the stored run count and answers it.
/// - `/sleep-record?ms=N`: waits N ms, then does what `/record` does (a write made long after the event began).
/// - `/runs`: the stored run count.
/// - `/alarm?in=N`: sets the object's alarm N ms from now; `/alarm-time`: the alarm in epoch ms, or `none`;
///   `/alarms`: how many times the alarm ran (each run adds one, and logs at notice level).
/// - `/wait-record?latch=L`: waits (the object takes other events meanwhile) until latch `L` is released, then does
///   what `/record` does; `/block?latch=L` holds the input gate until then. `/waiting?latch=L` answers how many
///   events wait on `L`, and `/release?latch=L` releases it. Latches belong to the node process, so a test can
///   release, from any object, a call it knows has started.
actor DiagnosticObject: DurableObject, AlarmHandling {
    nonisolated let state: DurableObjectState

    init(state: DurableObjectState, env: Environment) { self.state = state }

    func fetch(_ request: Request) async throws -> Response {
        let millis = Int(request.queryItems.first { $0.name == "ms" }?.value ?? "0") ?? 0
        switch request.path {
        case "/sleep":
            try await Task.sleep(for: .milliseconds(millis))
            return Response("slept \(millis)")
        case "/block":
            if let latch = request.queryItems.first(where: { $0.name == "latch" })?.value {
                try await state.blockConcurrencyWhile { await DiagnosticLatches.wait(latch) }
                return Response("blocked until \(latch)")
            }
            try await state.blockConcurrencyWhile { try await Task.sleep(for: .milliseconds(millis)) }
            return Response("blocked \(millis)")
        case "/wait-record":
            await DiagnosticLatches.wait(request.queryItems.first { $0.name == "latch" }?.value ?? "")
            let runs = (try await state.storage.get("runs", as: Int.self) ?? 0) + 1
            try state.storage.put("runs", runs)
            return Response("\(runs)")
        case "/waiting":
            return Response(
                "\(DiagnosticLatches.waiting(request.queryItems.first { $0.name == "latch" }?.value ?? ""))")
        case "/release":
            DiagnosticLatches.release(request.queryItems.first { $0.name == "latch" }?.value ?? "")
            return Response("released")
        case "/sleep-record":
            try await Task.sleep(for: .milliseconds(millis))
            let runs = (try await state.storage.get("runs", as: Int.self) ?? 0) + 1
            try state.storage.put("runs", runs)
            return Response("\(runs)")
        case "/record":
            let runs = (try await state.storage.get("runs", as: Int.self) ?? 0) + 1
            try state.storage.put("runs", runs)
            return Response("\(runs)")
        case "/runs":
            return Response("\(try await state.storage.get("runs", as: Int.self) ?? 0)")
        case "/alarm":
            try await state.storage.setAlarm(Date().addingTimeInterval(Double(millis) / 1_000))
            return Response("set")
        case "/alarm-time":
            guard let date = try await state.storage.getAlarm() else { return Response("none") }
            return Response("\(Int64((date.timeIntervalSince1970 * 1_000).rounded()))")
        case "/alarms":
            return Response("\(try await state.storage.get("alarms", as: Int.self) ?? 0)")
        default:
            return Response("Not found", status: .notFound)
        }
    }

    func alarm(_ info: AlarmInfo) async throws {
        let runs = (try await state.storage.get("alarms", as: Int.self) ?? 0) + 1
        try state.storage.put("alarms", runs)
        state.logger.notice("alarm ran", metadata: ["runs": "\(runs)", "retry": "\(info.retryCount)"])
    }
}

/// The latches of ``DiagnosticObject``: named, process-wide, released once for good.
enum DiagnosticLatches {
    private struct Latch {
        var released = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private static let latches = Mutex<[String: Latch]>([:])

    /// Waits until `name` is released (at once when it was).
    static func wait(_ name: String) async {
        await withCheckedContinuation { continuation in
            let now = latches.withLock { latches -> Bool in
                if latches[name]?.released == true { return true }
                latches[name, default: Latch()].waiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// How many wait on `name` now.
    static func waiting(_ name: String) -> Int { latches.withLock { $0[name]?.waiters.count ?? 0 } }

    /// Releases `name`: every waiter resumes, and later waits return at once.
    static func release(_ name: String) {
        let waiters = latches.withLock { latches -> [CheckedContinuation<Void, Never>] in
            var latch = latches[name, default: Latch()]
            latch.released = true
            defer {
                latch.waiters = []
                latches[name] = latch
            }
            return latch.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
