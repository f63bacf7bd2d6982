import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    @Suite("Prometheus endpoints of real gateway and node processes")
    struct MetricsProcessTests {
        func scrape(_ port: Int?) async throws -> PrometheusScrape {
            let port = try #require(port, "the process printed no metrics port")
            let answer = try await HTTPTestClient.send("http://127.0.0.1:\(port)/metrics")
            #expect(answer.status == 200)
            #expect(answer.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
            return try PrometheusScrape(answer.text)
        }

        @Test("GET /metrics on the gateway and the node; invocations, forwarded calls and storage writes move")
        func countersMove() async throws {
            let folder = TemporaryDirectory("metrics")
            let gateway = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"), arguments: ["--metrics-port", "0"])
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("node1"),
                arguments: ["--node-id", "node1", "--gateway", "127.0.0.1:\(gateway.port)", "--metrics-port", "0"])
            // A node started without the flag opens no metrics port.
            let plain = try await ServerProcess.node(dataDirectory: folder.child("plain"))
            #expect(plain.metricsPort == nil)
            #expect(await plain.stop() == 0)

            let gatewayBefore = try await scrape(gateway.metricsPort)
            let nodeBefore = try await scrape(node.metricsPort)
            let other = try await HTTPTestClient.send("http://127.0.0.1:\(gateway.metricsPort!)/other")
            #expect(other.status == 404)

            // Traffic: through the gateway's HTTP bridge (the worker) and through DurableClient over RPC.
            let web = "http://127.0.0.1:\(gateway.httpPort!)"
            for expected in 1...4 {
                #expect(
                    try await HTTPTestClient.send(web + "/counter/increment").text
                        == "Durable Object 'A' count: \(expected)")
            }
            let client = DurableClient(host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api)
            let counters = try await client.namespace("COUNTER")
            for expected in 1...3 {
                #expect(
                    try await counters.getByName("metrics").fetch("http://counter/increment").text() == "\(expected)")
            }
            await client.close()

            let gatewayAfter = try await scrape(gateway.metricsPort)
            let nodeAfter = try await scrape(node.metricsPort)
            func moved(
                _ before: PrometheusScrape, _ after: PrometheusScrape, _ name: String, _ labels: [String: String]
            )
                -> Double
            {
                after.sum(name, labels) - before.sum(name, labels)
            }
            let forwarded = ["node": "node1", "outcome": "ok"]
            #expect(moved(gatewayBefore, gatewayAfter, "durable_gateway_forwarded_calls_total", forwarded) == 7)
            #expect(
                moved(gatewayBefore, gatewayAfter, "durable_gateway_forwarded_call_duration_seconds_count", forwarded)
                    == 7)
            #expect(gatewayAfter.sum("durable_gateway_nodes") == 1)
            #expect(gatewayAfter.contains("durable_gateway_open_websockets"))

            let counter = ["node": "node1", "class": "Counter"]
            let ok = counter.merging(["outcome": "ok"]) { $1 }
            #expect(moved(nodeBefore, nodeAfter, "durable_object_invocations_total", ok) == 7)
            #expect(moved(nodeBefore, nodeAfter, "durable_object_invocation_duration_seconds_count", ok) == 7)
            #expect(moved(nodeBefore, nodeAfter, "durable_storage_writes_total", counter) == 7)
            #expect(moved(nodeBefore, nodeAfter, "durable_storage_written_bytes_total", counter) > 0)
            #expect(moved(nodeBefore, nodeAfter, "durable_group_commit_batches_per_sync_sum", ["node": "node1"]) >= 7)
            #expect(nodeAfter.sum("durable_active_objects", ["node": "node1"]) == 2)
            #expect(nodeAfter.sum("durable_object_queued_events", ["node": "node1"]) == 0)

            #expect(await node.stop() == 0)
            #expect(await gateway.stop() == 0)
        }

        @Test("durable dev serves the gateway's and every node's figures on one port, nodes apart by label")
        func devServesAll() async throws {
            let folder = TemporaryDirectory("metrics-dev")
            let dev = try await ServerProcess.dev(
                dataDirectory: folder.child("data"), arguments: ["--nodes", "2", "--metrics-port", "0"])
            let web = "http://127.0.0.1:\(dev.httpPort!)"
            for expected in 1...3 {
                #expect(
                    try await HTTPTestClient.send(web + "/counter/increment").text
                        == "Durable Object 'A' count: \(expected)")
            }
            let scrape = try await scrape(dev.metricsPort)
            #expect(scrape.sum("durable_gateway_forwarded_calls_total", ["outcome": "ok"]) == 3)
            #expect(scrape.sum("durable_object_invocations_total", ["class": "Counter", "outcome": "ok"]) == 3)
            #expect(
                Set(scrape.matching("durable_active_objects").compactMap { $0.labels["node"] }) == ["node-1", "node-2"])
            #expect(scrape.sum("durable_active_objects") == 1)
            #expect(await dev.interrupt() == 0)
        }
    }
}
