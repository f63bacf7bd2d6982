import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    @Suite("Storage node over RPC (real processes)")
    struct NodeTests {
        @Test("a client increments counters on a node; the values survive a graceful restart")
        func countersSurviveRestart() async throws {
            let folder = TemporaryDirectory("node")
            var node = try await ServerProcess.node(dataDirectory: folder.child("data"))
            var client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            let counters = try await client.namespace("COUNTER")
            let stub = counters.getByName("visits")
            let values = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<100 { group.addTask { Int(try await stub.fetch("http://counter/increment").text())! } }
                return try await group.reduce(into: Set<Int>()) { $0.insert($1) }
            }
            #expect(values == Set(1...100))
            let health = try await client.health()
            #expect(health.serving)
            let stats = try await client.stats()
            #expect(stats.invocations >= 100)
            let hex = stub.id.hexString
            await client.close()
            #expect(await node.stop() == 0, "graceful exit")

            node = try await ServerProcess.node(dataDirectory: folder.child("data"))
            client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            let again = try await client.namespace("COUNTER")
            #expect(try await again.get(again.idFromString(hex)).fetch("http://counter/").text() == "100")
            await client.close()
            #expect(await node.stop() == 0)
        }

        @Test("errors cross the wire with their code and the platform's words")
        func errors() async throws {
            let folder = TemporaryDirectory("node-errors")
            let node = try await ServerProcess.node(dataDirectory: folder.child("data"))
            let client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            let unknown = await #expect(throws: DurableObjectError.self) { try await client.namespace("NOPE") }
            #expect(unknown?.code == .notFound)
            #expect(unknown?.message.contains("NOPE") == true)

            let counters = try await client.namespace("COUNTER")
            let examples = try await client.namespace("EXAMPLE")
            let foreign = examples.idFromName("x")
            let wrong = await #expect(throws: DurableObjectError.self) {
                try await counters.get(foreign).fetch("http://counter/")
            }
            #expect(wrong?.code == .invalidArgument)
            #expect(wrong?.message == "Durable Object ID is not valid for this namespace.")

            let notFound = try await counters.getByName("a").fetch("http://counter/elsewhere")
            #expect(notFound.status == .notFound)
            #expect(notFound.text() == "Not found")

            let example = try await examples.getByName("ip").fetch(
                "http://example/", method: .post, headers: [HTTPField.Name("CF-Connecting-IP")!: "192.0.2.1"],
                body: .text("hi"))
            #expect(example.text() == "192.0.2.1 stored hi")
            await client.close()
            #expect(await node.stop() == 0)
        }

        @Test(
            "overload is RESOURCE_EXHAUSTED, overloaded and retryable, a refused request never runs, and other objects on the node keep answering"
        )
        func overload() async throws {
            let folder = TemporaryDirectory("node-overload")
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("data"), arguments: ["--max-queued-requests", "1"])
            let client = DurableClient(
                host: "127.0.0.1", port: node.port, connections: 4, credentials: TestKeys.cluster)
            let counters = try await client.namespace("COUNTER")
            let stub = counters.getByName("hot")
            // The burst on one object, and meanwhile one increment on each of 20 other objects of the same node.
            let others = (0..<20).map { counters.getByName("cold-\($0)") }
            let (outcomes, otherAnswers) = await withTaskGroup(of: (hot: Bool, Result<Response, any Error>).self) {
                group in
                for _ in 0..<500 {
                    group.addTask { (true, await Result { try await stub.fetch("http://counter/increment") }) }
                }
                for other in others {
                    group.addTask { (false, await Result { try await other.fetch("http://counter/increment") }) }
                }
                var hot: [Result<Response, any Error>] = []
                var cold: [Result<Response, any Error>] = []
                for await (isHot, outcome) in group {
                    if isHot { hot.append(outcome) } else { cold.append(outcome) }
                }
                return (hot, cold)
            }
            #expect(otherAnswers.allSatisfy { (try? $0.get().text()) == "1" }, "the other objects answered")
            var successes = 0
            var overloaded = 0
            for outcome in outcomes {
                switch outcome {
                case .success: successes += 1
                case .failure(let error as DurableObjectError):
                    #expect(error.code == .resourceExhausted)
                    #expect(error.overloaded && error.retryable)
                    #expect(error.message == "Durable Object is overloaded. Too many requests queued.")
                    overloaded += 1
                case .failure(let error): Issue.record("unexpected error \(error)")
                }
            }
            #expect(overloaded > 0, "a burst of 500 against a queue of 1 must overflow")
            #expect(successes + overloaded == 500)
            #expect(try await stub.fetch("http://counter/").text() == "\(successes)", "refused requests never ran")
            await client.close()
            #expect(await node.stop() == 0)
        }

        @Test(
            "through a gateway, an object its node reported overloaded is refused at the gateway with the node's error, and never runs the refused calls"
        )
        func overloadShedAtGateway() async throws {
            let folder = TemporaryDirectory("gateway-shedding")
            // A hold-off far longer than the test, so that the call after the burst is refused by the gateway for
            // certain.
            let gateway = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"),
                arguments: ["--metrics-port", "0", "--overload-hold-off-ms", "600000"])
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("node"),
                arguments: [
                    "--node-id", "node1", "--gateway", "127.0.0.1:\(gateway.port)", "--max-queued-requests", "1",
                    "--metrics-port", "0",
                ])
            let client = DurableClient(host: "127.0.0.1", port: gateway.port, connections: 4, credentials: TestKeys.api)
            let counters = try await client.namespace("COUNTER")
            let stub = counters.getByName("hot")
            let outcomes = await withTaskGroup(of: Result<Response, any Error>.self) { group in
                for _ in 0..<500 { group.addTask { await Result { try await stub.fetch("http://counter/increment") } } }
                return await group.reduce(into: []) { $0.append($1) }
            }
            let successes = outcomes.filter { (try? $0.get()) != nil }.count
            #expect(successes < 500, "a burst of 500 against a queue of 1 must overflow")
            func scrape(_ port: Int?) async throws -> PrometheusScrape {
                let answer = try await HTTPTestClient.send("http://127.0.0.1:\(try #require(port))/metrics")
                return try PrometheusScrape(answer.text)
            }
            let nodeRejections = try await scrape(node.metricsPort).sum("durable_object_overload_rejections_total")
            let shedBefore = try await scrape(gateway.metricsPort).sum("durable_gateway_shed_calls_total")
            #expect(nodeRejections + shedBefore == Double(500 - successes), "every refusal counted once")

            // Within the hold-off the gateway answers for the node, with the node's error.
            let error = await #expect(throws: DurableObjectError.self) {
                try await stub.fetch("http://counter/increment")
            }
            #expect(error?.code == .resourceExhausted)
            #expect(error?.overloaded == true && error?.retryable == true)
            #expect(error?.message == "Durable Object is overloaded. Too many requests queued.")
            #expect(try await scrape(gateway.metricsPort).sum("durable_gateway_shed_calls_total") == shedBefore + 1)
            #expect(
                try await scrape(node.metricsPort).sum("durable_object_overload_rejections_total") == nodeRejections,
                "the node never saw the refused call")
            // Other objects are served; the refused calls never ran: the node ran the burst's successes, then cold's.
            #expect(try await counters.getByName("cold").fetch("http://counter/increment").text() == "1")
            #expect(
                try await scrape(node.metricsPort).sum("durable_object_invocations_total", ["outcome": "ok"])
                    == Double(successes + 1))
            await client.close()
            #expect(await node.stop() == 0)
            #expect(await gateway.stop() == 0)
        }

        @Test("a stale placement epoch is FAILED_PRECONDITION; the current one is served")
        func placementEpochs() async throws {
            let folder = TemporaryDirectory("node-epochs")
            let node = try await ServerProcess.node(dataDirectory: folder.child("data"))
            let client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            let counters = try await client.namespace("COUNTER")
            let id = counters.idFromName("placed")
            let slot = (UInt32(id.bytes[0]) << 8 | UInt32(id.bytes[1])) % 4096
            let _: Durable_V1_AssignSlotsResponse = try await client.call(
                "durable.v1.Node/AssignSlots",
                Durable_V1_AssignSlotsRequest.with {
                    $0.assignments = [
                        .with {
                            $0.slot = slot; $0.epoch = 5
                        }
                    ]
                })
            let request = Request(url: "http://counter/increment")
            for stale: UInt64 in [0, 4] {
                let error = await #expect(throws: DurableObjectError.self) {
                    try await client.invoke(
                        namespaceID: counters.namespaceID, id: id, request: request, timeout: .seconds(5), epoch: stale)
                }
                #expect(error?.code == .failedPrecondition)
            }
            let served = try await client.invoke(
                namespaceID: counters.namespaceID, id: id, request: request, timeout: .seconds(5), epoch: 5)
            #expect(served.text() == "1")
            await client.close()
            #expect(await node.stop() == 0)
        }

        @Test("a bad command line is refused with a message naming the option")
        func badArguments() async throws {
            let refused = try await ChildProcess.run(
                BuiltExecutable.durable, ["node", "--port", "70000", "--data", "/tmp/unused"])
            #expect(refused.status != 0)
            #expect(refused.errors.contains("--port"), "\(refused.errors)")
        }
    }
}
