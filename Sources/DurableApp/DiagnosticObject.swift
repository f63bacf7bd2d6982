import DurableObjects
import Foundation

/// An object class for exercising a node from the outside (`durable node --diagnostics`, bound as `DIAGNOSTIC`):
/// it can take a chosen time, hold its input gate, and count how often it ran.
///
/// - `/sleep?ms=N`: waits N ms (the object takes other events meanwhile), then answers `slept N`.
/// - `/block?ms=N`: holds the input gate for N ms (`blockConcurrencyWhile`), so later requests queue.
/// - `/record`: adds one to the stored run count and answers it.
/// - `/sleep-record?ms=N`: waits N ms, then does what `/record` does (a write made long after the event began).
/// - `/runs`: the stored run count.
/// - `/alarm?in=N`: sets the object's alarm N ms from now; `/alarm-time`: the alarm in epoch ms, or `none`;
///   `/alarms`: how many times the alarm ran (each run adds one, and logs at notice level).
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
            try await state.blockConcurrencyWhile { try await Task.sleep(for: .milliseconds(millis)) }
            return Response("blocked \(millis)")
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
