import DurableObjects
import DurableObjectsTesting
import Foundation
import Logging
import TestSupport
import Testing

/// An object that logs what it is asked to: `/log?n=N&level=L` logs N lines at level L; `/throw` throws.
actor ChattyProbe: DurableObject {
    nonisolated let state: DurableObjectState

    init(state: DurableObjectState, env: Environment) { self.state = state }

    func fetch(_ request: Request) async throws -> Response {
        let query = Dictionary(request.queryItems.map { ($0.name, $0.value ?? "") }) { $1 }
        switch request.path {
        case "/log":
            let level = Logger.Level(rawValue: query["level"] ?? "info") ?? .info
            for index in 0..<(Int(query["n"] ?? "1") ?? 1) {
                state.logger.log(level: level, "line \(index)", metadata: ["index": "\(index)"])
            }
            return Response("logged")
        case "/throw":
            throw DurableObjectError(.invalidArgument, "the probe was told to throw")
        default:
            return Response("Not found", status: .notFound)
        }
    }
}

/// The tap behind `durable tail`: objects' log lines and uncaught errors reach subscribers, with what the object was
/// handling, in bounded buffers; nothing is kept without subscribers.
@Suite("Live tail of object logs")
struct LogTapTests {
    func withChattyRuntime(_ body: (DurableTestRuntime, ObjectLogTap) async throws -> Void) async throws {
        var logger = Logger(label: "durable.testing")
        logger.logLevel = .info
        let runtime = try DurableTestRuntime(
            classes: [DurableObjectClass(ChattyProbe.self)], bindings: ["CHATTY": "ChattyProbe"], logger: logger)
        do {
            try await body(runtime, try runtime.runtime.logTap)
            await runtime.close()
        } catch {
            await runtime.close()
            throw error
        }
    }

    @Test("a log line reaches the tail with its level, metadata and the request it was handling")
    func logLine() async throws {
        try await withChattyRuntime { runtime, tap in
            let stub = try runtime.namespace("CHATTY").getByName("alice")
            #expect(!tap.isActive)
            _ = try await stub.fetch("http://chatty/log")  // nobody tails: nothing kept
            let subscription = tap.subscribe()
            #expect(tap.isActive)
            _ = try await stub.fetch(
                "http://chatty/log?level=debug", method: .post,
                headers: [HTTPField.Name("x-request-id")!: "req-42"])
            let batch = try #require(await subscription.next())
            #expect(batch.dropped == 0)
            #expect(batch.events.count == 1)
            let event = try #require(batch.events.first)
            #expect(event.kind == .log)
            #expect(event.level == .debug, "a debug line reaches the tail although the logger is at info")
            #expect(event.message == "line 0")
            #expect(event.metadata["index"] == "0")
            #expect(event.className == "ChattyProbe")
            #expect(event.objectID == stub.id)
            #expect(event.objectID.name == "alice")
            #expect(event.trigger?.event == "fetch")
            #expect(event.trigger?.method == "POST")
            #expect(event.trigger?.url?.hasSuffix("/log?level=debug") == true)
            #expect(event.trigger?.requestID == "req-42")
            subscription.cancel()
            #expect(!tap.isActive)
            #expect(await subscription.next() == nil)
        }
    }

    @Test("an uncaught error reaches the tail as an exception")
    func exception() async throws {
        try await withChattyRuntime { runtime, tap in
            let subscription = tap.subscribe()
            defer { subscription.cancel() }
            let stub = try runtime.namespace("CHATTY").getByName("thrower")
            await #expect(throws: DurableObjectError.self) { try await stub.fetch("http://chatty/throw") }
            let event = try #require(await subscription.next()?.events.first)
            #expect(event.kind == .exception)
            #expect(event.level == .error)
            #expect(event.message == "the probe was told to throw")
            #expect(event.trigger?.event == "fetch")
        }
    }

    @Test("a filter keeps one object's lines; a full buffer drops and counts instead of growing")
    func filterAndBound() async throws {
        try await withChattyRuntime { runtime, tap in
            let namespace = try runtime.namespace("CHATTY")
            let watched = namespace.getByName("watched")
            let subscription = tap.subscribe(
                ObjectLogFilter(namespaceID: namespace.namespaceID, objectID: watched.id.bytes), capacity: 3)
            defer { subscription.cancel() }
            _ = try await namespace.getByName("other").fetch("http://chatty/log?n=5")
            _ = try await watched.fetch("http://chatty/log?n=10")
            let batch = try #require(await subscription.next())
            #expect(batch.events.map(\.message) == ["line 0", "line 1", "line 2"])
            #expect(batch.dropped == 7)
            #expect(batch.events.allSatisfy { $0.objectID == watched.id })
        }
    }
}
