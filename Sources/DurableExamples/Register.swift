import DurableObjects
import Foundation

/// A register and an append-only log in one object: what the fault harness (`durable-chaos`) drives to check
/// that acknowledged writes survive crashes and that each object's history is linearizable.
///
/// - `GET /register` answers the value, or `unset`;
/// - `POST /register/write?value=N` sets it and answers `ok`;
/// - `POST /register/cas?expected=E&new=N` sets it to N only if it holds E (`unset` for none) and answers
///   `true` or `false`;
/// - `POST /log/append?value=V` adds V to the log and answers its index: the entry and the log's length are
///   written in the same turn, so they are committed as one batch;
/// - `GET /log` answers `{"length": L, "entries": [...]}` with the entries in order.
public actor Register: DurableObject {
    /// The object's state.
    public nonisolated let state: DurableObjectState

    /// Creates the instance.
    public init(state: DurableObjectState, env: Environment) {
        self.state = state
    }

    /// The log as `GET /log` answers it.
    public struct Log: Codable, Sendable, Equatable {
        /// The length stored beside the entries.
        public var length: Int
        /// The entries, in order.
        public var entries: [String]
    }

    /// Serves the register and the log.
    public func fetch(_ request: Request) async throws -> Response {
        let query = Dictionary(
            request.queryItems.map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { first, _ in first })
        switch (request.method, request.path) {
        case (.get, "/register"):
            return Response(try await state.storage.get("register", as: Int.self).map { "\($0)" } ?? "unset")
        case (.post, "/register/write"):
            guard let value = query["value"].flatMap(Int.init) else { return Self.badRequest("value") }
            try state.storage.put("register", value)
            return Response("ok")
        case (.post, "/register/cas"):
            guard let value = query["new"].flatMap(Int.init), let expectedText = query["expected"],
                expectedText == "unset" || Int(expectedText) != nil
            else { return Self.badRequest("expected and new") }
            let current = try await state.storage.get("register", as: Int.self)
            guard current == Int(expectedText) else { return Response("false") }
            try state.storage.put("register", value)
            return Response("true")
        case (.post, "/log/append"):
            guard let value = query["value"], !value.isEmpty else { return Self.badRequest("value") }
            let length = try await state.storage.get("log-length", as: Int.self) ?? 0
            // Two puts with no await between them: one turn, so one batch.
            try state.storage.put(Self.entryKey(length), value)
            try state.storage.put("log-length", length + 1)
            return Response("\(length)")
        case (.get, "/log"):
            let length = try await state.storage.get("log-length", as: Int.self) ?? 0
            let entries = try await state.storage.list(StorageListOptions(prefix: "log-entry:"), as: String.self)
            return try Response.json(Log(length: length, entries: entries.map(\.value)))
        default:
            return Response("Not found", status: .notFound)
        }
    }

    static func entryKey(_ index: Int) -> String {
        let digits = String(index)
        return "log-entry:" + String(repeating: "0", count: max(0, 10 - digits.count)) + digits
    }

    static func badRequest(_ what: String) -> Response {
        Response("Give \(what) as integers in the query.", status: .badRequest)
    }
}
