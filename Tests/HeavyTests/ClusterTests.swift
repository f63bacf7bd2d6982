import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    @Suite("A gateway in front of three nodes (real processes)")
    struct ClusterTests {
        /// Reads every counter through the gateway; returns how many answered `expected` and the errors of the rest.
        func readAll(_ counters: DurableObjectNamespace, count: Int) async -> (
            matching: [String: String], errors: [DurableObjectError]
        ) {
            var values: [String: String] = [:]
            var errors: [DurableObjectError] = []
            for index in 0..<count {
                do {
                    values["c\(index)"] = try await counters.getByName("c\(index)").fetch("http://counter/").text()
                } catch let error as DurableObjectError {
                    errors.append(error)
                } catch {
                    errors.append(DurableObjectError(.internal, "\(error)"))
                }
            }
            return (values, errors)
        }

        @Test(
            "objects spread over the nodes; a dead node fails only its objects, retryably; restarts keep data and placement"
        )
        func cluster() async throws {
            let cluster = try await TestCluster.start(nodes: 3)
            let nodes = cluster.nodes
            var client = DurableClient(host: "127.0.0.1", port: try cluster.gateway.port, credentials: TestKeys.api)
            let objects = 60
            var counters = try await client.namespace("COUNTER")
            for index in 0..<objects {
                #expect(try await counters.getByName("c\(index)").fetch("http://counter/increment").text() == "1")
            }
            var perNode: [UInt64] = []
            for node in nodes {
                let direct = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
                perNode.append(try await direct.stats().activeObjects)
                await direct.close()
            }
            #expect(perNode.reduce(0, +) == UInt64(objects))
            #expect(perNode.filter { $0 > 0 }.count >= 2, "objects landed on several nodes: \(perNode)")

            // The example app answers through the gateway too.
            let example = try await client.namespace("EXAMPLE").getByName("/").fetch(
                "http://example/", method: .post, headers: [HTTPField.Name("CF-Connecting-IP")!: "127.0.0.1"],
                body: .text("important data!"))
            #expect(example.text() == "127.0.0.1 stored important data!")

            // The seed examples over HTTP, through the gateway's worker.
            let web = "http://127.0.0.1:\(try cluster.gateway.httpPort!)"
            let stored = try await HTTPTestClient.send(
                web + "/", method: "POST", headers: ["Content-Type": "text/plain"], body: "important data!")
            #expect(stored.status == 200 && stored.text == "127.0.0.1 stored important data!")
            #expect(try await HTTPTestClient.send(web + "/counter/increment").text == "Durable Object 'A' count: 1")
            #expect(try await HTTPTestClient.send(web + "/counter/increment").text == "Durable Object 'A' count: 2")
            #expect(try await HTTPTestClient.send(web + "/counter/decrement").text == "Durable Object 'A' count: 1")
            #expect(try await HTTPTestClient.send(web + "/counter/").text == "Durable Object 'A' count: 1")
            let missing = try await HTTPTestClient.send(web + "/counter/reset")
            #expect(missing.status == 404 && missing.text == "Not found")
            // The counter the worker reaches is the one DurableClient reaches by the same name.
            #expect(try await counters.getByName("A").fetch("http://counter/").text() == "1")

            // Node 2 dies: only its objects fail, and retryably.
            try await cluster.crashNode(2)
            let during = await readAll(counters, count: objects)
            #expect(during.errors.count == Int(perNode[1]))
            #expect(during.errors.allSatisfy { $0.code == .unavailable && $0.retryable }, "\(during.errors.prefix(2))")
            #expect(during.matching.values.allSatisfy { $0 == "1" })
            // Over HTTP, an object on the dead node is 503 with Retry-After; the others answer.
            var statuses: [Int: Int] = [:]
            for index in 0..<objects {
                let answer = try await HTTPTestClient.send(web + "/probe\(index)", method: "POST", body: "x")
                statuses[answer.status, default: 0] += 1
                if answer.status == 503 { #expect(answer.header("Retry-After") == "1") }
            }
            #expect(Set(statuses.keys) == [200, 503], "\(statuses)")

            // It comes back with its data.
            try await cluster.startNode(2)
            let after = await readAll(counters, count: objects)
            #expect(after.errors.isEmpty, "\(after.errors.prefix(2))")
            #expect(after.matching.count == objects && after.matching.values.allSatisfy { $0 == "1" })

            // The gateway restarts: registry and placement are kept (no object moves or starts over).
            await client.close()
            #expect(try await cluster.stopGateway() == 0)
            try await cluster.startGateway()
            client = DurableClient(host: "127.0.0.1", port: try cluster.gateway.port, credentials: TestKeys.api)
            counters = try await client.namespace("COUNTER")
            let final = await readAll(counters, count: objects)
            #expect(final.errors.isEmpty, "\(final.errors.prefix(2))")
            #expect(final.matching.values.allSatisfy { $0 == "1" })
            await client.close()
            #expect(await cluster.stop().allSatisfy { $0 == 0 }, "every process exits 0")
        }
    }
}
