import DurableClient
import DurableObjects
import Foundation
import Synchronization
import TestSupport
import Testing

extension WholeMachineTests {
    /// A node added to a running cluster gets its share of the slots, with their data: `durable rebalance`, or the
    /// gateway by itself with `--auto-rebalance`.
    @Suite("Rebalancing slots onto a new node (real processes)")
    struct SlotRebalanceTests {
        @Test("durable rebalance gives a new node its share under load; every object keeps every acknowledged write")
        func rebalanceOntoNewNode() async throws {
            try await withTestCluster(nodes: 2, label: "rebalance") { cluster in
                let gateway = "127.0.0.1:\(try cluster.gateway.port)"
                let (client, counters, names) = try await Self.seed(cluster, objects: 120)
                try await cluster.startNode(3)
                let durable = { (arguments: [String]) in
                    try await ChildProcess.run(
                        BuiltExecutable.durable, arguments + ["--gateway", gateway],
                        environment: TestKeys.environment(included: true))
                }
                let dry = try await durable(["rebalance", "--dry-run"])
                #expect(
                    dry.status == 0 && dry.output.contains("→ node3") && dry.output.contains("nothing moved"), "\(dry)")
                let bad = try await durable(["rebalance", "--max-share", "1.5"])
                #expect(bad.status != 0 && bad.errors.contains("--max-share must be above 0 and at most 1"), "\(bad)")

                let (rebalance, load) = try await Self.underLoad(counters, names) {
                    try await durable(["rebalance", "--max-share", "0.2", "--parallel", "3"])
                }
                let (acknowledged, failed) = (load.acknowledged, load.failed)
                #expect(rebalance.status == 0, "\(rebalance)")
                print("rebalance under load: \(rebalance.output.split(separator: "\n").last ?? "")")
                #expect(failed.isEmpty, "only retryable refusals: \(failed)")
                let counts = try await Self.slotCounts(gateway)
                #expect(counts.count == 3 && counts.values.max()! - counts.values.min()! <= 1, "\(counts)")
                #expect(rebalance.output.contains("round 2"), "several rounds of at most a fifth: \(rebalance.output)")
                try await Self.expectEveryWrite(counters, names, acknowledged)
                await client.close()
            }
        }

        @Test("with --auto-rebalance the gateway gives a node that joins its share by itself")
        func automaticRebalance() async throws {
            try await withTestCluster(nodes: 2, label: "auto-rebalance", gatewayArguments: ["--auto-rebalance"]) {
                cluster in
                let gateway = "127.0.0.1:\(try cluster.gateway.port)"
                let (client, counters, names) = try await Self.seed(cluster, objects: 80)
                try await cluster.startNode(3)
                #expect(
                    try await eventually(timeout: .seconds(120)) {
                        let counts = try await Self.slotCounts(gateway)
                        return counts.count == 3 && counts.values.max()! - counts.values.min()! <= 1
                    })
                try await Self.expectEveryWrite(counters, names, [:])
                await client.close()
            }
        }

        /// Writes one increment to each of `objects` counters.
        static func seed(_ cluster: TestCluster, objects: Int) async throws -> (
            DurableClient, DurableObjectNamespace, [String]
        ) {
            let client = DurableClient(
                host: "127.0.0.1", port: try cluster.gateway.port, defaultTimeout: .seconds(10),
                credentials: TestKeys.api)
            let counters = try await client.namespace("COUNTER")
            let names = (0..<objects).map { "balance-\($0)" }
            for name in names { _ = try await counters.getByName(name).fetch("http://c/increment") }
            return (client, counters, names)
        }

        /// What a client incrementing counters saw.
        struct LoadOutcome: Sendable {
            /// Acknowledged increments per counter.
            var acknowledged: [String: Int] = [:]
            /// Calls refused with a retryable error (not retried: the client goes on to the next counter).
            var refused = 0
            /// Calls that failed otherwise.
            var failed: [String] = []
        }

        /// Runs `body` while a client increments every counter in turn; returns what `body` returned and what the
        /// client saw.
        static func underLoad<T: Sendable>(
            _ counters: DurableObjectNamespace, _ names: [String], _ body: () async throws -> T
        ) async throws -> (T, LoadOutcome) {
            let stop = Atomic<Bool>(false)
            let load = Task {
                var outcome = LoadOutcome()
                var turn = 0
                while !stop.load(ordering: .relaxed) {
                    let name = names[turn % names.count]
                    turn += 1
                    do {
                        _ = try await counters.getByName(name).fetch("http://c/increment")
                        outcome.acknowledged[name, default: 0] += 1
                    } catch let error as DurableObjectError where error.retryable {
                        outcome.refused += 1
                    } catch {
                        outcome.failed.append("\(name): \(error)")
                    }
                }
                return outcome
            }
            let value: T
            do {
                value = try await body()
            } catch {
                stop.store(true, ordering: .relaxed)
                _ = await load.value
                throw error
            }
            stop.store(true, ordering: .relaxed)
            return (value, await load.value)
        }

        /// Every counter holds its seed increment and every acknowledged one.
        static func expectEveryWrite(
            _ counters: DurableObjectNamespace, _ names: [String], _ acknowledged: [String: Int]
        ) async throws {
            for name in names {
                let stored = Int(try await counters.getByName(name).fetch("http://c/").text()) ?? -1
                #expect(stored == 1 + (acknowledged[name] ?? 0), "\(name): every acknowledged increment")
            }
        }

        /// Slots per node, from `durable slots list`.
        static func slotCounts(_ gateway: String) async throws -> [String: Int] {
            guard let listing = try await SlotListing.read(gateway: gateway) else {
                throw ChildProcess.Failure(description: "durable slots list failed at \(gateway)")
            }
            return listing.slotsPerNode
        }
    }
}
