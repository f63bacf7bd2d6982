import DurableExamples
import DurableObjects
import Foundation
import Synchronization
import TestSupport
import Testing

/// Holds the instance named `blocked` from its start until it opens.
let blockerGate = Latch()

/// The latches instances named `hold:NAME` wait on in `fetch`.
let heldCalls = Mutex<[String: Latch]>([:])

/// The latch of the instance named `name`.
func heldCall(_ name: String) -> Latch {
    heldCalls.withLock { latches in
        if let latch = latches[name] { return latch }
        let latch = Latch()
        latches[name] = latch
        return latch
    }
}

/// Answers its request headers. The instance named `blocked` holds its input gate from its start until
/// ``blockerGate`` opens, so requests to it queue (and the queue's bound refuses the surplus).
actor HeaderEcho: DurableObject {
    nonisolated let state: DurableObjectState
    init(state: DurableObjectState, env: Environment) {
        self.state = state
        if state.id.name == "blocked" { state.blockConcurrencyWhile { await blockerGate.wait() } }
    }

    func fetch(_ request: Request) async throws -> Response {
        if let name = state.id.name, name.hasPrefix("hold:") { await heldCall(name).wait() }
        let ip = request.headers[HTTPField.Name("CF-Connecting-IP")!] ?? "-"
        let forwarded = request.headers[HTTPField.Name("X-Forwarded-For")!] ?? "-"
        return Response("\(ip) | \(forwarded) | \(request.method) \(request.path) | \(request.text())")
    }
}

struct PlainFailure: Error, CustomStringConvertible {
    var description: String { "the worker gave up" }
}

/// A worker exercising every way a request can go wrong.
let bridgeApp = DurableApplication(
    classes: [DurableObjectClass(HeaderEcho.self), DurableObjectClass(Counter.self)],
    fetch: { request, env in
        let parts = request.path.split(separator: "/").map(String.init)
        switch parts.first {
        case "id":
            let counters = try env.namespace("COUNTER")
            return try await counters.get(counters.idFromString(parts.count > 1 ? parts[1] : "")).fetch(request)
        case "nobinding":
            return try await env.namespace("NOPE").getByName("x").fetch(request)
        case "throw":
            throw PlainFailure()
        case "vars":
            return Response(env.vars["GREETING"] ?? "-")
        case "block":
            return try await env.namespace("ECHO").getByName("blocked").fetch(request)
        case "hold":
            return try await env.namespace("ECHO").getByName("hold:" + (parts.count > 1 ? parts[1] : "")).fetch(request)
        default:
            return try await env.namespace("ECHO").getByName("echo").fetch(request)
        }
    })

let bridgeConfiguration = """
    name = "bridge-app"
    [vars]
    GREETING = "hello from durable.toml"
    [durable_objects]
    bindings = [ { name = "ECHO", class_name = "HeaderEcho" }, { name = "COUNTER", class_name = "Counter" } ]
    [[migrations]]
    tag = "v1"
    new_classes = ["HeaderEcho", "Counter"]
    """

@Suite("The HTTP bridge")
struct HTTPBridgeTests {
    @Test("the object sees the caller's address in CF-Connecting-IP (not the client's claim) and X-Forwarded-For")
    func forwardedHeaders() async throws {
        try await withLocalCluster(app: bridgeApp, nodes: 1, configuration: bridgeConfiguration) { cluster in
            let answer = try await HTTPTestClient.send(
                cluster.url + "/hello", method: "POST",
                headers: ["CF-Connecting-IP": "6.6.6.6", "X-Forwarded-For": "10.0.0.1"], body: "hi")
            #expect(answer.status == 200)
            #expect(answer.text == "127.0.0.1 | 10.0.0.1, 127.0.0.1 | POST /hello | hi")
            let plain = try await HTTPTestClient.send(cluster.url + "/")
            #expect(plain.text == "127.0.0.1 | 127.0.0.1 | GET / | ")
            // The worker's env carries the configuration's [vars].
            #expect(try await HTTPTestClient.send(cluster.url + "/vars").text == "hello from durable.toml")
        }
    }

    @Test("invalid ids are 400, an unknown binding and a failing worker are 500, with the reason")
    func errorStatuses() async throws {
        try await withLocalCluster(app: bridgeApp, nodes: 1, configuration: bridgeConfiguration) { cluster in
            let malformed = try await HTTPTestClient.send(cluster.url + "/id/xyz")
            #expect(malformed.status == 400)
            #expect(malformed.text == "Invalid Durable Object ID: must be 64 hex digits")
            let foreign = try await HTTPTestClient.send(cluster.url + "/id/" + String(repeating: "ab", count: 32))
            #expect(foreign.status == 400)
            #expect(foreign.text == "Durable Object ID is not valid for this namespace.")
            let unbound = try await HTTPTestClient.send(cluster.url + "/nobinding")
            #expect(unbound.status == 500)
            #expect(unbound.text == "No Durable Object binding named 'NOPE' (bindings: COUNTER, ECHO).")
            let failing = try await HTTPTestClient.send(cluster.url + "/throw")
            #expect(failing.status == 500)
            #expect(failing.text == "the worker gave up")
            // The bridge keeps serving.
            #expect(try await HTTPTestClient.send(cluster.url + "/").status == 200)
        }
    }

    @Test("an object call past the gateway's deadline is answered 504 with the reason; the bridge serves on")
    func deadline() async throws {
        try await withLocalCluster(
            app: bridgeApp, nodes: 1, configuration: bridgeConfiguration, objectCallTimeout: .milliseconds(300)
        ) { cluster in
            let name = uniqueHoldName()
            let late = try await HTTPTestClient.send(cluster.url + "/hold/" + name)
            #expect(late.status == 504)
            #expect(late.text.contains("eadline"), "\(late.text)")
            heldCall("hold:" + name).open()
            // The bridge serves on (a route that calls no object: the short deadline applies to every object call).
            #expect(try await HTTPTestClient.send(cluster.url + "/vars").text == "hello from durable.toml")
        }
    }

    @Test("a body over the bridge's limit (32 MiB) is answered 413 without reaching the worker; the bridge serves on")
    func oversizedBody() async throws {
        try await withLocalCluster(app: bridgeApp, nodes: 1, configuration: bridgeConfiguration) { cluster in
            let body = String(repeating: "x", count: 32 * 1024 * 1024 + 1)
            let refused = try await HTTPTestClient.send(cluster.url + "/", method: "POST", body: body)
            #expect(refused.status == 413)
            #expect(refused.text == "The request body is over the limit of 33554432 bytes.")
            #expect(try await HTTPTestClient.send(cluster.url + "/", method: "POST", body: "small").status == 200)
        }
    }

    @Test(
        "headers over the limits are answered 431 and not valid HTTP 400, each closing that connection; the bridge serves on"
    )
    func oversizedHeaders() async throws {
        try await withLocalCluster(app: bridgeApp, nodes: 1, configuration: bridgeConfiguration) { cluster in
            let port = try #require(Int(cluster.url.split(separator: ":").last ?? ""))
            func exchange(_ request: String) async throws -> String {
                let socket = try await RawSocket.connect(port: port)
                await socket.send(Array(request.utf8))
                return String(decoding: await socket.receiveAll(), as: UTF8.self)
            }
            let big = try await exchange(
                "GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 90_000))\r\n\r\n")
            #expect(big.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"), "\(big.prefix(200))")
            #expect(
                big.hasSuffix(
                    "The request headers are over the limit (81920 bytes a field, 81920 bytes in all, 1000 fields)."))
            let many = try await exchange(
                "GET / HTTP/1.1\r\nHost: x\r\n" + (0..<1_200).map { "X-H\($0): v\r\n" }.joined() + "\r\n")
            #expect(many.hasPrefix("HTTP/1.1 431"), "\(many.prefix(200))")
            let garbage = try await exchange("NOT HTTP AT ALL\r\n\r\n")
            #expect(garbage.hasPrefix("HTTP/1.1 400 Bad Request\r\n"), "\(garbage.prefix(200))")
            #expect(try await HTTPTestClient.send(cluster.url + "/", method: "POST", body: "small").status == 200)
        }
    }

    @Test("an overloaded object answers 503 with Retry-After and the platform's message; the rest still run")
    func overload() async throws {
        var runtime = RuntimeConfiguration()
        runtime.mailbox.maxQueuedRequests = 2
        try await withLocalCluster(app: bridgeApp, nodes: 1, configuration: bridgeConfiguration, runtime: runtime) {
            cluster in
            let url = cluster.url + "/block"
            let answers = try await withThrowingTaskGroup(of: HTTPAnswer.self) { group in
                for _ in 0..<8 { group.addTask { try await HTTPTestClient.send(url) } }
                var answers: [HTTPAnswer] = []
                // The object holds every request it admitted (its start-up holds the input gate); the first refusal
                // proves the queue is full.
                while let answer = try await group.next() {
                    answers.append(answer)
                    if answer.status == 503 { blockerGate.open() }
                }
                return answers
            }
            let refused = answers.filter { $0.status == 503 }
            #expect(refused.count == 6, "two fit the queue; \(answers.map(\.status))")
            #expect(refused.allSatisfy { $0.text == "Durable Object is overloaded. Too many requests queued." })
            #expect(refused.allSatisfy { $0.header("Retry-After") == "1" })
            #expect(answers.filter { $0.status == 200 }.count == 8 - refused.count)
        }
    }
}

/// A fresh name for a held instance.
func uniqueHoldName() -> String { UUID().uuidString }
