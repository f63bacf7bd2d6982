import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

/// Operator commands against a ``TestCluster`` of a gateway and two nodes.
private struct AdminCluster {
    var cluster: TestCluster

    var gateway: ServerProcess { get throws { try cluster.gateway } }
    var gatewayAddress: String { get throws { "127.0.0.1:\(try gateway.port)" } }
    var web: String { get throws { "http://127.0.0.1:\(try gateway.httpPort!)" } }

    static func start() async throws -> AdminCluster {
        AdminCluster(cluster: try await TestCluster.start(nodes: 2, label: "admin"))
    }

    /// Stops every process, expecting each to exit 0.
    func stop() async {
        #expect(await cluster.stop().allSatisfy { $0 == 0 }, "every process exits 0")
    }

    /// Starts the gateway and both nodes again on their folders.
    func restart() async throws {
        try await cluster.startGateway()
        for number in 1...2 { try await cluster.startNode(number) }
    }

    /// Runs `durable ARGUMENTS --gateway <gateway>` with the test keys, or with `environment`.
    func durable(_ arguments: [String], environment: [String: String]? = nil) async throws -> ChildProcess.Outcome {
        try await ChildProcess.run(
            BuiltExecutable.durable, arguments + ["--gateway", try gatewayAddress],
            environment: environment ?? TestKeys.environment(included: true))
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

extension WholeMachineTests {
    @Suite("Inspection, backup and restore between real processes")
    struct AdminProcessTests {
        @Test(
            "objects and storage are read through the gateway with the admin token only; a backup restores the state it saw"
        )
        func inspectBackupRestore() async throws {
            let cluster = try await AdminCluster.start()
            let folder = cluster.cluster.folder
            let web = try cluster.web

            // Data through the HTTP bridge: counters by name, a note stored under the caller's address.
            let counts = ["alpha": 3, "beta": 1, "gamma": 2, "delta": 5]
            for (name, count) in counts {
                for _ in 0..<count { _ = try await HTTPTestClient.send(web + "/counters/\(name)/increment") }
            }
            let note = try await HTTPTestClient.send(
                web + "/notes", method: "POST", headers: ["Content-Type": "text/plain"], body: "important data!")
            #expect(note.text == "127.0.0.1 stored important data!")
            // A counter reached by id only, and a register with several keys, through the RPC client.
            var client = DurableClient(host: "127.0.0.1", port: try cluster.gateway.port, credentials: TestKeys.api)
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

            // durable slots list: each object's slot, owned by the node that holds it; totals add up per node.
            let slotListing = try await cluster.json(["slots", "list"])
            let slotRows = slotListing["slots"] as? [[String: Any]] ?? []
            let ownerOfSlot = Dictionary(
                uniqueKeysWithValues: slotRows.map { ($0["slot"] as? Int ?? -1, $0["node"] as? String ?? "?") })
            for (id, object) in listed {
                let slot = Int(id.prefix(4), radix: 16)! % 4096
                #expect(ownerOfSlot[slot] == object.node, "slot \(slot) of \(id)")
                #expect(
                    (slotRows.first { $0["slot"] as? Int == slot }?["objects"] as? Int ?? 0) >= 1,
                    "slot \(slot) counts its objects")
            }
            let nodeTotals = slotListing["nodes"] as? [[String: Any]] ?? []
            #expect(nodeTotals.map { $0["node"] as? String } == ["node1", "node2"])
            for total in nodeTotals {
                let mine = slotRows.filter { $0["node"] as? String == total["node"] as? String }
                #expect(total["slots"] as? Int == mine.count)
                #expect(total["objects"] as? Int == mine.compactMap { $0["objects"] as? Int }.reduce(0, +))
                #expect((total["bytes"] as? Int ?? 0) > 0)
            }
            let onlyNode1 = try await cluster.json(["slots", "list", "--node", "node1"])
            #expect((onlyNode1["slots"] as? [[String: Any]] ?? []).allSatisfy { $0["node"] as? String == "node1" })
            let slotTable = try await cluster.durable(["slots", "list"])
            #expect(slotTable.status == 0 && slotTable.output.contains("\(slotRows.count) of 4096 slots assigned"))
            let unknownNode = try await cluster.durable(["slots", "list", "--node", "node9"])
            #expect(unknownNode.status != 0 && unknownNode.errors.contains("No node 'node9' is registered."))

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
            for part in ["gateway", "nodes/node1", "nodes/node2"] {
                let data = folder.child((part as NSString).lastPathComponent)
                try FileManager.default.removeItem(atPath: data)
                try FileManager.default.copyItem(atPath: "\(backup)/\(part)", toPath: data)
            }
            try await cluster.restart()
            let after = try await cluster.objects("COUNTER")
            #expect(Set(after.keys) == Set(listed.keys), "the objects at backup time, not epsilon: \(after)")
            for (id, object) in listed { #expect(after[id]?.node == object.node && after[id]?.name == object.name) }
            #expect(try await HTTPTestClient.send(try cluster.web + "/counters/alpha/").text == "3")
            #expect(try await HTTPTestClient.send(try cluster.web + "/counters/delta/").text == "5")
            client = DurableClient(host: "127.0.0.1", port: try cluster.gateway.port, credentials: TestKeys.api)
            let restoredCounters = try await client.namespace("COUNTER")
            #expect(try await restoredCounters.get(unnamed).fetch("http://counter/").text() == "4")
            let log = try await client.namespace("REGISTERS").getByName("log").fetch("http://r/log").text()
            #expect(log.contains(#""length":3"#) && !log.contains("late"), "\(log)")
            #expect(try await cluster.storage("EXAMPLE", "/notes").map(\.1) == ["important data!"])
            // The restored cluster takes new writes.
            #expect(try await HTTPTestClient.send(try cluster.web + "/counters/alpha/increment").text == "4")
            await client.close()
            await cluster.stop()
        }
    }
}
