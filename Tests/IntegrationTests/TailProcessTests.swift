import DurableClient
import DurableObjects
import Foundation
import Synchronization
import Testing
import WireTestSupport

/// `durable tail` against a live cluster: a gateway and two nodes as real processes.
@Suite("durable tail (real processes)")
struct TailProcessTests {
    @Test("a log line written by an object reaches `durable tail`, with its binding, name and request")
    func tailSeesObjectLog() async throws {
        let folder = TemporaryDirectory("tail")
        let gateway = try await NodeProcess.launchGateway(dataDirectory: folder.child("gateway"))
        var nodes: [NodeProcess] = []
        for number in 1...2 {
            nodes.append(
                try NodeProcess(
                    dataDirectory: folder.child("node\(number)"),
                    arguments: ["--node-id", "node\(number)", "--gateway", "127.0.0.1:\(gateway.port)"]))
        }
        let client = DurableClient(host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api)
        let counters = try await client.namespace("COUNTER")
        let durable = DurableExecutable.url
        let tailArguments = [
            "tail", "--gateway", "127.0.0.1:\(gateway.port)", "--binding", "COUNTER", "--id", "tailed", "--format",
            "json", "--max-events", "1",
        ]
        let finished = DoneFlag()
        let tail = Task {
            defer { finished.set() }
            return try await runChild(durable, tailArguments, environment: TestKeys.environment(included: true))
        }
        // The tail goes live after a moment; until it has printed its event, other objects' and this one's
        // increments keep coming (the others must not show up).
        var sent = 0
        while sent < 400 {
            _ = try await counters.getByName("untailed").fetch("http://counter/increment")
            _ = try await counters.getByName("tailed").fetch("http://counter/increment")
            sent += 1
            if await eventuallyAsync(timeout: .milliseconds(50), { finished.isSet }) { break }
        }
        let result = try await tail.value
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
        let refused = try await runChild(durable, tailArguments, environment: apiOnly)
        #expect(refused.status != 0)
        #expect(refused.errors.contains("durable.v1.Admin/Tail needs the admin token"), "\(refused.errors)")
        let unknown = try await runChild(
            durable, ["tail", "--gateway", "127.0.0.1:\(gateway.port)", "--binding", "NOPE"],
            environment: TestKeys.environment(included: true))
        #expect(unknown.status != 0)
        #expect(unknown.errors.contains("No Durable Object binding named 'NOPE'"), "\(unknown.errors)")
        let noBinding = try await runChild(
            durable, ["tail", "--id", "x"], environment: TestKeys.environment(included: true))
        #expect(noBinding.status != 0)
        #expect(noBinding.errors.contains("--id needs --binding"), "\(noBinding.errors)")

        await client.close()
        for node in nodes { #expect(await node.shutDown() == 0) }
        #expect(await gateway.shutDown() == 0)
    }
}

/// Set once, read from any task.
private final class DoneFlag: Sendable {
    private let done = Atomic<Bool>(false)
    func set() { done.store(true, ordering: .releasing) }
    var isSet: Bool { done.load(ordering: .acquiring) }
}
