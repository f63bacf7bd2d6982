import DurableObjects
import Foundation

/// The example app: its object classes, their default bindings and its worker.
public enum ExampleApp {
    /// The classes the example app provides.
    public static let classes: [DurableObjectClass] = [
        DurableObjectClass(Counter.self),
        DurableObjectClass(DurableObjectExample.self),
        DurableObjectClass(ChatRoom.self),
        DurableObjectClass(RateLimiter.self),
        DurableObjectClass(BroadcastRoom.self),
        DurableObjectClass(Register.self),
    ]

    /// Binding name → class name.
    public static let bindings: [String: String] = [
        "COUNTER": "Counter",
        "EXAMPLE": "DurableObjectExample",
        "ROOMS": "ChatRoom",
        "LIMITERS": "RateLimiter",
        "BROADCAST": "BroadcastRoom",
        "REGISTERS": "Register",
    ]

    /// The app as `durable` serves it by default.
    public static let application = DurableApplication(
        classes: classes, configuration: configuration, worker: worker)

    /// The worker of the documentation's two examples:
    /// - `/counter/increment`, `/counter/decrement` and `/counter/` reach the `Counter` named `A` and answer
    ///   `Durable Object 'A' count: N`; any other `/counter/...` path is `404 Not found`;
    /// - every other path reaches the `DurableObjectExample` named after the path, which stores the body under the
    ///   caller's IP address;
    /// - `/chat/` is the chat page, and `/chat/api/room/NAME/websocket` opens a WebSocket to the ``ChatRoom`` NAME;
    /// - `/counters/NAME/increment`, `/counters/NAME/decrement` and `/counters/NAME/` reach the `Counter` NAME and
    ///   answer its bare value (what the load generator drives over HTTP);
    /// - `/broadcast/NAME/websocket` joins the ``BroadcastRoom`` NAME;
    /// - `/ping` answers `pong` without reaching any object (the HTTP no-op of the load generator).
    public static let worker = Worker { request, env in
        let path = request.path
        if path == "/chat" || path == "/chat/" {
            return Response(ChatRoom.page, headers: [.contentType: "text/html; charset=utf-8"])
        }
        if path.hasPrefix("/chat/api/room/") {
            let parts = path.dropFirst("/chat/api/room/".count).split(separator: "/")
            guard parts.count == 2, parts[1] == "websocket", let room = parts[0].removingPercentEncoding,
                !room.isEmpty, room.count <= 32
            else { return Response("Not found", status: .notFound) }
            let rooms = try env.namespace("ROOMS")
            return try await rooms.get(rooms.idFromName(room)).fetch(request)
        }
        if path == "/ping" { return Response("pong") }
        if path.hasPrefix("/counters/") {
            // /counters/NAME/OPERATION → the Counter NAME, at path /OPERATION.
            let rest = path.dropFirst("/counters/".count)
            guard let slash = rest.firstIndex(of: "/"), let name = rest[..<slash].removingPercentEncoding,
                !name.isEmpty
            else { return Response("Not found", status: .notFound) }
            let counters = try env.namespace("COUNTER")
            var forwarded = request
            forwarded.head.path = String(rest[slash...])
            return try await counters.get(counters.idFromName(name)).fetch(forwarded)
        }
        if path.hasPrefix("/broadcast/") {
            let parts = path.dropFirst("/broadcast/".count).split(separator: "/")
            guard parts.count == 2, parts[1] == "websocket", let room = parts[0].removingPercentEncoding,
                !room.isEmpty
            else { return Response("Not found", status: .notFound) }
            let rooms = try env.namespace("BROADCAST")
            return try await rooms.get(rooms.idFromName(room)).fetch(request)
        }
        if path.hasPrefix("/counter/") {
            let counters = try env.namespace("COUNTER")
            let name = "A"
            var forwarded = request
            forwarded.head.path = String(path.dropFirst("/counter".count))
            let response = try await counters.get(counters.idFromName(name)).fetch(forwarded)
            guard response.status == .ok else { return response }
            return Response("Durable Object '\(name)' count: \(response.text())")
        }
        let examples = try env.namespace("EXAMPLE")
        return try await examples.get(examples.idFromName(path)).fetch(request)
    }
}
