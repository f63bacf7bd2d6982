import DurableClient
import DurableObjects
import Foundation
import Testing
import WireTestSupport

/// A gateway and two nodes as real processes, their folders and ports.
private struct AdminCluster {
    var gateway: NodeProcess
    var nodes: [NodeProcess]

    var gatewayAddress: String { "127.0.0.1:\(gateway.port)" }
    var web: String { "http://127.0.0.1:\(gateway.httpPort!)" }

    /// Starts a gateway on `gatewayData` and nodes `node1`, `node2` on `nodeData[0]`, `nodeData[1]`.
    static func start(gatewayData: String, nodeData: [String]) async throws -> AdminCluster {
        let gateway = try await NodeProcess.launchGateway(dataDirectory: gatewayData)
        var nodes: [NodeProcess] = []
        for (index, data) in nodeData.enumerated() {
            nodes.append(
                try await NodeProcess.launch(
                    dataDirectory: data,
                    arguments: ["--node-id", "node\(index + 1)", "--gateway", "127.0.0.1:\(gateway.port)"]))
        }
        return AdminCluster(gateway: gateway, nodes: nodes)
    }

    func stop() async {
        for node in nodes { #expect(await node.shutDown() == 0) }
        #expect(await gateway.shutDown() == 0)
    }

    /// Runs `durable ARGUMENTS --gateway <gateway>` with the test keys, or with `environment`.
    func durable(_ arguments: [String], environment: [String: String]? = nil) async throws -> ChildResult {
        try await runDurable(
            arguments + ["--gateway", gatewayAddress], environment: environment ?? TestKeys.environment(included: true))
    }

    /// `durable … --format json`, decoded.
    func json(_ arguments: [String]) async throws -> [String: Any] {
        let result = try await durable(arguments + ["--format", "json"])
        #expect(result.status == 0, "\(result)")
        return try #require(
            try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], "\(result)")
    }

    /// The objects `durable objects list BINDING` shows: id → (name or nil, node).
    func objects(_ binding: String) async throws -> [String: (name: String?, node: String)] {
        let listing = try await json(["objects", "list", binding])
        let objects = try #require(listing["objects"] as? [[String: Any]])
        var result: [String: (name: String?, node: String)] = [:]
        for object in objects {
            result[try #require(object["id"] as? String)] = (object["name"] as? String, object["node"] as? String ?? "")
        }
        return result
    }

    /// The entries `durable storage list` shows: key → value (decoded JSON value).
    func storage(_ binding: String, _ object: String, _ extra: [String] = []) async throws -> [(String, String)] {
        let listing = try await json(["storage", "list", binding, object] + extra)
        let entries = try #require(listing["entries"] as? [[String: Any]])
        return entries.map { ($0["key"] as? String ?? "?", "\($0["value"] ?? "?")") }
    }
}

@Suite("Inspection, backup and restore between real processes")
struct AdminProcessTests {
    @Test(
        "objects and storage are read through the gateway with the admin token only; a backup restores the state it saw"
    )
    func inspectBackupRestore() async throws {
        let folder = TemporaryDirectory("admin")
        var cluster = try await AdminCluster.start(
            gatewayData: folder.child("gateway"), nodeData: [folder.child("node1"), folder.child("node2")])
        let web = cluster.web

        // Data through the HTTP bridge: counters by name, a note stored under the caller's address.
        let counts = ["alpha": 3, "beta": 1, "gamma": 2, "delta": 5]
        for (name, count) in counts {
            for _ in 0..<count { _ = try await HTTPTestClient.send(web + "/counters/\(name)/increment") }
        }
        let note = try await HTTPTestClient.send(
            web + "/notes", method: "POST", headers: ["Content-Type": "text/plain"], body: "important data!")
        #expect(note.text == "127.0.0.1 stored important data!")
        // A counter reached by id only, and a register with several keys, through the RPC client.
        var client = DurableClient(host: "127.0.0.1", port: cluster.gateway.port, credentials: TestKeys.api)
        let counters = try await client.namespace("COUNTER")
        let unnamed = counters.newUniqueId()
        for _ in 0..<4 { _ = try await counters.get(unnamed).fetch("http://counter/increment") }
        let registers = try await client.namespace("REGISTERS")
        for value in ["x", "y", "z"] {
            _ = try await registers.getByName("log").fetch("http://r/log/append?value=\(value)", method: .post)
        }

        // durable objects list: every object with data, from both nodes, named when reached by name.
        let listed = try await cluster.objects("COUNTER")
        var expected = Dictionary(uniqueKeysWithValues: counts.keys.map { (counters.idFromName($0).hexString, $0) })
        #expect(Set(listed.keys) == Set(expected.keys).union([unnamed.hexString]), "\(listed)")
        for (id, name) in expected { #expect(listed[id]?.name == name) }
        #expect(listed[unnamed.hexString]?.name == nil)
        #expect(Set(listed.values.map(\.node)) == ["node1", "node2"], "\(listed)")
        let table = try await cluster.durable(["objects", "list", "COUNTER"])
        #expect(table.status == 0, "\(table)")
        let alphaID = counters.idFromName("alpha").hexString
        #expect(
            table.output.split(separator: "\n").contains {
                $0.hasPrefix(alphaID) && $0.hasSuffix("alpha") && $0.contains(listed[alphaID]!.node)
            }, "\(table.output)")
        #expect(table.output.contains("5 objects of COUNTER"), "\(table.output)")

        // durable storage list / get: by name, by id, values decoded.
        #expect(try await cluster.storage("COUNTER", "alpha").map { "\($0.0)=\($0.1)" } == ["value=3"])
        #expect(try await cluster.storage("COUNTER", unnamed.hexString).map { "\($0.0)=\($0.1)" } == ["value=4"])
        let notes = try await cluster.durable(["storage", "list", "EXAMPLE", "/notes"])
        #expect(notes.status == 0, "\(notes)")
        #expect(
            notes.output.contains(#""127.0.0.1"  string  "important data!""#), "\(notes.output)")
        #expect(
            try await cluster.storage("REGISTERS", "log", ["--prefix", "log-entry:", "--limit", "2"]).map(\.1)
                == ["x", "y"])
        let value = try await cluster.durable(["storage", "get", "COUNTER", "delta", "value"])
        #expect(value.status == 0 && value.output == "5\n", "\(value)")
        let length = try await cluster.durable(["storage", "get", "REGISTERS", "log", "log-length"])
        #expect(length.output == "3\n", "\(length)")

        // Clear errors: a missing key, an unknown binding, an id of another namespace.
        let missing = try await cluster.durable(["storage", "get", "COUNTER", "alpha", "nothing"])
        #expect(missing.status != 0)
        #expect(missing.errors.contains("NOT_FOUND: No value is stored under key 'nothing' in object \(alphaID)."))
        let unknown = try await cluster.durable(["objects", "list", "NOPE"])
        #expect(unknown.status != 0)
        #expect(unknown.errors.contains("No Durable Object binding named 'NOPE' (bindings: "), "\(unknown)")
        let foreign = try await client.namespace("EXAMPLE").idFromName("/notes").hexString
        let wrongID = try await cluster.durable(["storage", "list", "COUNTER", foreign])
        #expect(wrongID.status != 0)
        #expect(
            wrongID.errors.contains(
                "'\(foreign)' is not an id of binding COUNTER (namespace example-app.Counter.1): Durable Object ID is not valid for this namespace."
            ), "\(wrongID)")

        // Only the admin token: the API token is refused, no token is unauthenticated.
        var apiOnly = TestKeys.environment(included: false)
        apiOnly["DURABLE_ADMIN_TOKEN"] = TestKeys.apiText
        let denied = try await cluster.durable(["objects", "list", "COUNTER"], environment: apiOnly)
        #expect(denied.status != 0)
        #expect(
            denied.errors.contains(
                "PERMISSION_DENIED: durable.v1.Admin/ListObjects needs the admin token; this connection proved the API token."
            ), "\(denied)")
        let anonymous = try await cluster.durable(
            ["storage", "get", "COUNTER", "alpha", "value"], environment: TestKeys.environment(included: false))
        #expect(anonymous.status != 0)
        #expect(anonymous.errors.contains("UNAUTHENTICATED: "), "\(anonymous)")
        #expect(!anonymous.output.contains("3"))

        // Backup: every node, then the gateway.
        let backup = folder.child("backup")
        let written = try await cluster.durable(["backup", backup])
        #expect(written.status == 0, "\(written)")
        for line in [
            "node node1: \(backup)/nodes/node1 (", "node node2: \(backup)/nodes/node2 (",
            "gateway: \(backup)/gateway (",
        ] {
            #expect(written.output.contains(line), "\(written.output)")
        }
        #expect(written.output.contains("Backup complete: 3 checkpoint(s)"), "\(written.output)")
        let again = try await cluster.durable(["backup", backup])
        #expect(again.status != 0)
        #expect(again.errors.contains("\(backup)/gateway exists already"), "\(again)")

        // Writes after the backup.
        for _ in 0..<2 { _ = try await HTTPTestClient.send(web + "/counters/alpha/increment") }
        _ = try await HTTPTestClient.send(web + "/counters/epsilon/increment")
        _ = try await registers.getByName("log").fetch("http://r/log/append?value=late", method: .post)
        expected[counters.idFromName("epsilon").hexString] = "epsilon"
        #expect(try await cluster.objects("COUNTER").count == 6)
        await client.close()
        await cluster.stop()

        // Restore: each process's data folder replaced by its checkpoint.
        let restored = folder.child("restored")
        try FileManager.default.createDirectory(atPath: restored, withIntermediateDirectories: true)
        for part in ["gateway", "nodes/node1", "nodes/node2"] {
            try FileManager.default.copyItem(
                atPath: "\(backup)/\(part)", toPath: "\(restored)/\((part as NSString).lastPathComponent)")
        }
        cluster = try await AdminCluster.start(
            gatewayData: "\(restored)/gateway", nodeData: ["\(restored)/node1", "\(restored)/node2"])
        let after = try await cluster.objects("COUNTER")
        #expect(Set(after.keys) == Set(listed.keys), "the objects at backup time, not epsilon: \(after)")
        for (id, object) in listed { #expect(after[id]?.node == object.node && after[id]?.name == object.name) }
        #expect(try await HTTPTestClient.send(cluster.web + "/counters/alpha/").text == "3")
        #expect(try await HTTPTestClient.send(cluster.web + "/counters/delta/").text == "5")
        client = DurableClient(host: "127.0.0.1", port: cluster.gateway.port, credentials: TestKeys.api)
        let restoredCounters = try await client.namespace("COUNTER")
        #expect(try await restoredCounters.get(unnamed).fetch("http://counter/").text() == "4")
        let log = try await client.namespace("REGISTERS").getByName("log").fetch("http://r/log").text()
        #expect(log.contains(#""length":3"#) && !log.contains("late"), "\(log)")
        #expect(try await cluster.storage("EXAMPLE", "/notes").map(\.1) == ["important data!"])
        // The restored cluster takes new writes.
        #expect(try await HTTPTestClient.send(cluster.web + "/counters/alpha/increment").text == "4")
        await client.close()
        await cluster.stop()
    }
}
