import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// Every node database and every gateway registry has an identity: a node id that comes back with another
    /// database, or a node that meets another registry, is refused with both named.
    @Suite("Node and registry identities (real processes)")
    struct NodeIdentityTests {
        /// The 32-hex-digit identities in `text`, in order.
        static func identities(in text: String) -> [String] {
            text.matches(of: /[0-9a-f]{32}/).map { String($0.output) }
        }

        @Test("a node restarted on an emptied folder is refused; with --replace-lost-node it joins, the loss logged")
        func emptiedNode() async throws {
            try await withTestCluster(nodes: 2, label: "identity") { cluster in
                let client = DurableClient(host: "127.0.0.1", port: try cluster.gateway.port, credentials: TestKeys.api)
                let counters = try await client.namespace("COUNTER")
                for index in 0..<20 {
                    #expect(try await counters.getByName("c\(index)").fetch("http://counter/increment").text() == "1")
                }
                // Node 2 stops; its folder is emptied; it comes back under its old id.
                #expect(try await cluster.stopNode(2) == 0)
                try FileManager.default.removeItem(atPath: cluster.nodeFolder(2))
                let refused = try await ChildProcess.run(
                    BuiltExecutable.durable, try cluster.nodeCommandLine(2),
                    environment: TestKeys.environment(included: true))
                #expect(refused.status != 0, "\(refused.output)")
                #expect(!refused.output.contains("listening"), "a refused node never listens")
                #expect(
                    refused.errors.contains("Node 'node2' came back with database"), "\(refused.errors.suffix(2_000))")
                #expect(refused.errors.contains("--replace-lost-node"))
                let named = Set(Self.identities(in: refused.errors))
                #expect(named.count == 2, "both databases are named: \(named)")

                // Meanwhile node 1's objects answer, node 2's fail retryably: none is served empty.
                var served = 0
                for index in 0..<20 {
                    do {
                        #expect(try await counters.getByName("c\(index)").fetch("http://counter/").text() == "1")
                        served += 1
                    } catch let error as DurableObjectError {
                        #expect(error.code == .unavailable && error.retryable, "\(error)")
                    }
                }
                #expect(served > 0 && served < 20, "\(served) of 20 served")

                // The operator says the data is gone: the node joins, and the gateway logs the loss.
                try await cluster.startNode(2, arguments: ["--replace-lost-node"])
                let gateway = try cluster.gateway
                #expect(
                    await eventually { gateway.child.errorText.contains("node replaces a lost node") },
                    "\(gateway.child.errorText.suffix(2_000))")
                var empty = 0
                for index in 0..<20 {
                    let value = try await counters.getByName("c\(index)").fetch("http://counter/").text()
                    #expect(value == "1" || value == "0")
                    if value == "0" { empty += 1 }
                }
                #expect(empty == 20 - served, "exactly the lost node's objects start over")
                // From now on the new database is the node's: a restart without the flag joins.
                #expect(try await cluster.stopNode(2) == 0)
                try await cluster.startNode(2)
                await client.close()
            }
        }

        @Test("a node refuses a gateway whose registry is not the one it joined")
        func wipedGateway() async throws {
            try await withTestCluster(nodes: 1, label: "registry") { cluster in
                let port = try cluster.gateway.port
                #expect(try await cluster.stopNode(1) == 0)
                #expect(try await cluster.stopGateway() == 0)
                try FileManager.default.removeItem(atPath: cluster.folder.child("gateway"))
                try await cluster.startGateway(rpcPort: port)
                let refused = try await ChildProcess.run(
                    BuiltExecutable.durable, try cluster.nodeCommandLine(1),
                    environment: TestKeys.environment(included: true))
                #expect(refused.status != 0)
                #expect(refused.errors.contains("Node 'node1' joined registry"), "\(refused.errors.suffix(2_000))")
                #expect(refused.errors.contains("but this gateway's registry is"))
                #expect(Set(Self.identities(in: refused.errors)).count == 2)
            }
        }
    }
}
