import DurableClient
import DurableHTTP
import DurableObjects
import Foundation
import TestSupport
import Testing

/// Throws, at `/CODE`, a `DurableObjectError` with that code and the message `object failed with CODE`.
actor ErrorThrower: DurableObject {
    nonisolated let state: DurableObjectState

    init(state: DurableObjectState, env: Environment) {
        self.state = state
    }

    func fetch(_ request: Request) async throws -> Response {
        let name = String(request.path.dropFirst())
        throw DurableObjectError(
            DurableObjectError.Code(name), "object failed with \(name)", retryable: name == "UNAVAILABLE")
    }
}

/// `/throw/NAME/CODE` reaches the thrower NAME at `/CODE`; `/unbound` asks for a binding the app lacks.
let throwerApp = DurableApplication(
    classes: [DurableObjectClass(ErrorThrower.self)],
    configuration: singleClassConfiguration(script: "throwers", binding: "THROWERS", className: "ErrorThrower"),
    worker: Worker { request, env in
        if request.path == "/unbound" { _ = try env.namespace("NOPE") }
        return try await forwardByName(request, after: "/throw/", to: env.namespace("THROWERS"))
    })

@Suite("An object's error keeps its code and message to every caller")
struct ObjectErrorCodeTests {
    @Test(
        "each status code an object throws reaches an RPC client as it was, and the bridge's caller as its HTTP status")
    func everyCodeFromAnObject() async throws {
        try await withLocalCluster(app: throwerApp, nodes: 1, configuration: throwerApp.configuration) { cluster in
            let throwers = try await cluster.client.namespace("THROWERS")
            for code in DurableObjectError.Code.all {
                let error = await #expect(throws: DurableObjectError.self) {
                    _ = try await throwers.getByName("t").fetch("http://t/\(code.name)")
                }
                #expect(error?.code == code, "threw \(code), the RPC client got \(String(describing: error?.code))")
                #expect(error?.message == "object failed with \(code.name)")
                #expect(error?.retryable == (code == .unavailable), "\(code)")

                let answer = try await HTTPTestClient.send(cluster.url + "/throw/t/\(code.name)")
                let expected = try #require(HTTPErrorMapping.statuses[code], "\(code) has an HTTP status")
                #expect(answer.status == expected, "threw \(code), the bridge answered \(answer.status)")
                #expect(answer.text == "object failed with \(code.name)")
                if expected == 503 { #expect(answer.header("Retry-After") == "1") }
            }
            // A binding the app lacks is the app's own mistake: a server error, not a 404.
            let unbound = try await HTTPTestClient.send(cluster.url + "/unbound")
            #expect(unbound.status == 500)
            #expect(unbound.text == "No Durable Object binding named 'NOPE' (bindings: THROWERS).")
        }
    }

    @Test("every code has exactly one HTTP status, and the table is the documented one")
    func statusTable() {
        #expect(Set(HTTPErrorMapping.statuses.keys) == Set(DurableObjectError.Code.all))
        #expect(HTTPErrorMapping.statuses[.notFound] == 404)
        #expect(HTTPErrorMapping.statuses[.deadlineExceeded] == 504)
        #expect(HTTPErrorMapping.statuses[.unavailable] == 503)
    }
}
