import DurableClient
import DurableObjects
import Foundation
import Synchronization
import TestSupport
import Testing

extension WholeMachineTests {
    /// `durable slots move` between real processes: a gateway and two nodes.
    @Suite("Slot moves (real processes)")
    struct SlotMoveTests {
        @Test("a slot moves to another node under load: its objects answer there with every acknowledged write")
        func moveUnderLoad() async throws {
            try await withTestCluster(nodes: 2, label: "slot-move") { cluster in
                let gateway = "127.0.0.1:\(try cluster.gateway.port)"
                let client = DurableClient(
                    host: "127.0.0.1", port: try cluster.gateway.port, defaultTimeout: .seconds(10),
                    credentials: TestKeys.api)
                let counters = try await client.namespace("COUNTER")
                for index in 0..<40 {
                    #expect(try await counters.getByName("m-\(index)").fetch("http://c/increment").text() == "1")
                }
                func durable(_ arguments: [String]) async throws -> ChildProcess.Outcome {
                    try await ChildProcess.run(
                        BuiltExecutable.durable, arguments + ["--gateway", gateway],
                        environment: TestKeys.environment(included: true))
                }
                func owners() async throws -> [Int: (node: String, epoch: Int)] {
                    let listing = try #require(try await SlotListing.read(gateway: gateway))
                    return Dictionary(
                        uniqueKeysWithValues: listing.slots.map { (Int($0.key), ($0.value.node, Int($0.value.epoch))) })
                }
                // A slot of node1 and the objects in it.
                let before = try await owners()
                let names = (0..<40).map { "m-\($0)" }
                let slotOf = { (name: String) in Int(PlacementEpochs.slot(of: counters.idFromName(name))) }
                let moved = try #require(names.map(slotOf).first { before[$0]?.node == "node1" })
                let inSlot = names.filter { slotOf($0) == moved }
                let hot = inSlot[0]

                // Load on one object of the slot while it moves: retryable refusals are retried.
                let stop = Atomic<Bool>(false)
                let load = Task {
                    var acknowledged = 0
                    var unknown = 0
                    var refused = 0
                    while !stop.load(ordering: .relaxed) {
                        do {
                            _ = try await counters.getByName(hot).fetch("http://c/increment")
                            acknowledged += 1
                        } catch let error as DurableObjectError where error.retryable {
                            refused += 1
                        } catch {
                            unknown += 1
                        }
                    }
                    return (acknowledged, unknown, refused)
                }
                let move = try await durable(["slots", "move", "\(moved)", "--to", "node2"])
                #expect(move.status == 0, "\(move)")
                #expect(move.output.contains("moved slot \(moved) from node1 to node2 at epoch 2"), "\(move.output)")
                // Some more calls after the move, then the count must hold every acknowledged increment.
                #expect(try await counters.getByName(hot).fetch("http://c/increment").status == .ok)
                stop.store(true, ordering: .relaxed)
                let (acknowledged, unknown, refused) = await load.value
                let count = Int(try await counters.getByName(hot).fetch("http://c/").text()) ?? -1
                print(
                    "slot move under load: \(acknowledged) acknowledged, \(refused) refused retryably, "
                        + "\(unknown) unknown; stored \(count); \(move.output)")
                #expect(count >= acknowledged + 2 && count <= acknowledged + 2 + unknown)
                for name in inSlot.dropFirst() {
                    #expect(try await counters.getByName(name).fetch("http://c/").text() == "1", "\(name) moved")
                }
                let after = try await owners()
                #expect(after[moved]?.node == "node2" && after[moved]?.epoch == 2)
                #expect(
                    after.filter { $0.key != moved }.mapValues(\.node)
                        == before.filter { $0.key != moved }.mapValues(\.node))
                let node1 = try await durable(["slots", "list", "--node", "node1", "--format", "json"])
                #expect(!node1.output.contains("\"slot\" : \(moved),"), "node1 no longer lists it")

                // Clear refusals.
                let again = try await durable(["slots", "move", "\(moved)", "--to", "node2"])
                #expect(again.status != 0 && again.errors.contains("is on node node2 already"), "\(again)")
                let nobody = try await durable(["slots", "move", "\(moved)", "--to", "node9"])
                #expect(nobody.status != 0 && nobody.errors.contains("No node 'node9' is registered."), "\(nobody)")
                let unassigned = try #require((0..<4096).first { after[$0] == nil })
                let empty = try await durable(["slots", "move", "\(unassigned)", "--to", "node1"])
                #expect(empty.status != 0 && empty.errors.contains("has no owner yet"), "\(empty)")
                await client.close()
            }
        }

        @Test("durable slots drain empties a node under load with no failed call beyond retryable ones")
        func drainUnderLoad() async throws {
            try await withTestCluster(nodes: 2, label: "drain") { cluster in
                let gateway = "127.0.0.1:\(try cluster.gateway.port)"
                let client = DurableClient(
                    host: "127.0.0.1", port: try cluster.gateway.port, defaultTimeout: .seconds(10),
                    credentials: TestKeys.api)
                let counters = try await client.namespace("COUNTER")
                let names = (0..<30).map { "d-\($0)" }
                for name in names { _ = try await counters.getByName(name).fetch("http://c/increment") }

                // Increments on every object while node1 drains; refusals that say to retry are retried.
                let (drain, load) = try await SlotRebalanceTests.underLoad(counters, names) {
                    try await ChildProcess.run(
                        BuiltExecutable.durable, ["slots", "drain", "node1", "--gateway", gateway],
                        environment: TestKeys.environment(included: true))
                }
                let (acknowledged, refused, failed) = (load.acknowledged, load.refused, load.failed)
                #expect(drain.status == 0 && drain.output.contains("node1 is empty"), "\(drain)")
                print(
                    "drain under load: \(drain.output.split(separator: "\n").last ?? ""), "
                        + "\(acknowledged.values.reduce(0, +)) increments acknowledged, \(refused) refused retryably")
                #expect(failed.isEmpty, "only retryable refusals: \(failed)")
                let listing = try await ChildProcess.run(
                    BuiltExecutable.durable,
                    ["slots", "list", "--node", "node1", "--format", "json", "--gateway", gateway],
                    environment: TestKeys.environment(included: true))
                let json = try JSONSerialization.jsonObject(with: Data(listing.output.utf8)) as? [String: Any]
                #expect((json?["slots"] as? [[String: Any]])?.isEmpty == true, "\(listing.output)")
                for name in names {
                    let stored = Int(try await counters.getByName(name).fetch("http://c/").text()) ?? -1
                    #expect(stored == 1 + (acknowledged[name] ?? 0), "\(name): every acknowledged increment")
                }
                await client.close()
            }
        }
    }
}
