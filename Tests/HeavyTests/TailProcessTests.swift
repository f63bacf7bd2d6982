import DurableClient
import DurableObjects
import Foundation
import Synchronization
import TestSupport
import Testing

extension WholeMachineTests {
    /// `durable tail` against a live cluster: a gateway and two nodes as real processes.
    @Suite("durable tail (real processes)")
    struct TailProcessTests {
        @Test("a log line written by an object reaches `durable tail`, with its binding, name and request")
        func tailSeesObjectLog() async throws {
            let cluster = try await TestCluster.start(nodes: 2, label: "tail")
            let gateway = try cluster.gateway
            let client = DurableClient(host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api)
            let counters = try await client.namespace("COUNTER")
            let durable = BuiltExecutable.durable
            let tailArguments = [
                "tail", "--gateway", "127.0.0.1:\(gateway.port)", "--binding", "COUNTER", "--id", "tailed", "--format",
                "json", "--max-events", "1",
            ]
            let tail = try await offPool {
                try ChildProcess(durable, tailArguments, environment: TestKeys.environment(included: true))
            }
            _ = try await tail.waitForLine(on: .errors) { $0.contains("[tail] tailing binding COUNTER, object tailed") }
            // Until the tail has printed its event and ended, this object's and another object's increments keep
            // coming (the other must not show up).
            for _ in 0..<400 where tail.isRunning {
                _ = try await counters.getByName("untailed").fetch("http://counter/increment")
                _ = try await counters.getByName("tailed").fetch("http://counter/increment")
            }
            let result = try await tail.outcome()
            #expect(result.status == 0, "\(result.errors)")
            #expect(result.errors.contains("[tail] tailing binding COUNTER, object tailed"))
            let line = try #require(result.output.split(separator: "\n").first)
            let event = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(event["binding"] as? String == "COUNTER")
            #expect(event["name"] as? String == "tailed")
            #expect(event["class"] as? String == "Counter")
            #expect(event["message"] as? String == "counter changed")
            #expect(event["kind"] as? String == "log")
            #expect(event["level"] as? String == "debug")
            #expect((event["node"] as? String)?.hasPrefix("node") == true)
            #expect((event["metadata"] as? [String: String])?["value"] != nil)
            #expect((event["request"] as? [String: String])?["event"] == "fetch")
            #expect(event["id"] as? String == counters.idFromName("tailed").hexString)

            // Only the admin token may tail; bad arguments are named.
            var apiOnly = TestKeys.environment(included: true)
            apiOnly["DURABLE_ADMIN_TOKEN"] = TestKeys.apiText
            let refused = try await ChildProcess.run(durable, tailArguments, environment: apiOnly)
            #expect(refused.status != 0)
            #expect(refused.errors.contains("durable.v1.Admin/Tail needs the admin token"), "\(refused.errors)")
            let unknown = try await ChildProcess.run(
                durable, ["tail", "--gateway", "127.0.0.1:\(gateway.port)", "--binding", "NOPE"],
                environment: TestKeys.environment(included: true))
            #expect(unknown.status != 0)
            #expect(unknown.errors.contains("No Durable Object binding named 'NOPE'"), "\(unknown.errors)")
            let noBinding = try await ChildProcess.run(
                durable, ["tail", "--id", "x"], environment: TestKeys.environment(included: true))
            #expect(noBinding.status != 0)
            #expect(noBinding.errors.contains("--id needs --binding"), "\(noBinding.errors)")

            await client.close()
            #expect(await cluster.stop().allSatisfy { $0 == 0 }, "every process exits 0")
        }
    }
}
