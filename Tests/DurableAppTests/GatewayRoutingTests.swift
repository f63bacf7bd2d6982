import DurableClient
import DurableExamples
import DurableObjects
import Testing

@Suite("Routing through the gateway")
struct GatewayRoutingTests {
    @Test("many first calls at once to new objects all reach them (the slot is announced before it is used)")
    func concurrentFirstCalls() async throws {
        try await withLocalCluster(
            app: ExampleApp.application, nodes: 3, configuration: ExampleApp.configuration
        ) { cluster in
            let counters = try await cluster.client.namespace("COUNTER")
            let failures = await withTaskGroup(of: String?.self) { group in
                for round in 0..<8 {
                    for name in 0..<16 {
                        group.addTask {
                            do {
                                _ = try await counters.getByName("n\(name)").fetch("http://do/increment")
                                return nil
                            } catch {
                                return "round \(round), n\(name): \(error)"
                            }
                        }
                    }
                }
                var failures: [String] = []
                for await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
            #expect(failures.isEmpty, "\(failures.prefix(3))")
            for name in 0..<16 {
                #expect(try await counters.getByName("n\(name)").fetch("http://do/").text() == "8")
            }
        }
    }
}

/// Forwards `/increment` to the counter named `target`, through its environment.
actor Relay: DurableObject {
    nonisolated let state: DurableObjectState
    let env: Environment
    init(state: DurableObjectState, env: Environment) {
        self.state = state
        self.env = env
    }

    func fetch(_ request: Request) async throws -> Response {
        try await env.namespace("COUNTER").getByName("target").fetch("http://do/increment")
    }
}

@Suite("Calls between objects in a cluster")
struct ObjectToObjectTests {
    @Test("objects on every node calling one object reach its single instance, wherever it lives")
    func singleInstanceAcrossNodes() async throws {
        let app = DurableApplication(classes: [DurableObjectClass(Counter.self), DurableObjectClass(Relay.self)])
        try await withLocalCluster(
            app: app, nodes: 3,
            configuration: """
                name = "relay-app"
                [durable_objects]
                bindings = [ { name = "COUNTER", class_name = "Counter" }, { name = "RELAY", class_name = "Relay" } ]
                [[migrations]]
                tag = "v1"
                new_classes = ["Counter", "Relay"]
                """
        ) { cluster in
            let relays = try await cluster.client.namespace("RELAY")
            var answers: [String] = []
            for index in 0..<24 {
                answers.append(try await relays.getByName("r\(index)").fetch("http://do/").text())
            }
            #expect(answers == (1...24).map(String.init))
            // Had each node run its own "target", the counts would have started over on every node.
            let busyNodes = cluster.nodes.filter { $0.runtime.activeCount > 0 }.count
            #expect(busyNodes >= 2, "the relays ran on several nodes")
        }
    }
}
