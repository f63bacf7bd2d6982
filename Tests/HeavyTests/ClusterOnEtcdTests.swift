import DurableChaos
import DurableClient
import DurableEtcd
import DurableExamples
import DurableObjects
import DurableWire
import Foundation
import Synchronization
import TestSupport
import Testing

extension WholeMachineTests {
    /// The cluster on etcd, as operators run it: three etcd members, two gateways and three nodes, all real
    /// processes. One test walks through the faults in turn, so that the processes start once.
    @Suite("Several gateways on a three-member etcd (real processes)")
    struct ClusterOnEtcdTests {
        @Test(
            "first calls through both gateways give each slot one owner; a publish through one is served by the other; a gateway, the etcd leader and a node killed under load lose no acknowledged write"
        )
        func gatewaysNodesAndEtcdUnderFaults() async throws {
            let folder = TemporaryDirectory("etcd-cluster")
            let etcd = try await EtcdCluster.start(members: 3, folder: folder.child("etcd"))
            let inspector = try EtcdClient(endpoints: [etcd.endpoints], requestTimeout: .seconds(30))
            do {
                try await scenario(folder: folder, etcd: etcd, inspector: inspector)
            } catch {
                await inspector.close()
                await etcd.stop()
                throw error
            }
            await inspector.close()
            await etcd.stop()
        }

        private func scenario(folder: TemporaryDirectory, etcd: EtcdCluster, inspector: EtcdClient) async throws {
            let etcdArguments = ["--etcd", etcd.endpoints, "--lease-ttl", "3"]
            let gatewayA = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway-a"), arguments: etcdArguments)
            let gatewayB = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway-b"), arguments: etcdArguments)
            var nodes: [ServerProcess] = []
            for number in 1...3 {
                // No --gateway: the nodes find the gateways in etcd.
                nodes.append(
                    try await ServerProcess.node(
                        dataDirectory: folder.child("node\(number)"),
                        arguments: ["--node-id", "node\(number)"] + etcdArguments))
            }
            // Each node's membership names its address, its database and its load.
            let identities = Dictionary(
                uniqueKeysWithValues: try await inspector.get(prefix: Array("/durable/default/identities/".utf8))
                    .values.map {
                        (
                            String(String(decoding: $0.key, as: UTF8.self).split(separator: "/").last!),
                            String(decoding: $0.value, as: UTF8.self)
                        )
                    })
            let memberRecords = try await inspector.get(prefix: Array("/durable/default/members/".utf8)).values
            #expect(memberRecords.count == 3 && memberRecords.allSatisfy { $0.lease != 0 })
            for member in memberRecords {
                let nodeID = String(String(decoding: member.key, as: UTF8.self).split(separator: "/").last!)
                let record = try JSONSerialization.jsonObject(with: Data(member.value)) as? [String: Any]
                #expect(
                    record?["databaseIdentity"] as? String == identities[nodeID],
                    "\(nodeID): \(String(describing: record))")
                #expect((record?["address"] as? String)?.hasPrefix("127.0.0.1:") == true)
                #expect(record?["activeObjects"] as? Int == 0)
            }

            let viaA = DurableClient(host: "127.0.0.1", port: gatewayA.port, credentials: TestKeys.api)
            let viaB = DurableClient(host: "127.0.0.1", port: gatewayB.port, credentials: TestKeys.api)
            let both = DurableClient(
                endpoints: [
                    .init(host: "127.0.0.1", port: gatewayA.port), .init(host: "127.0.0.1", port: gatewayB.port),
                ],
                defaultTimeout: .seconds(10), credentials: TestKeys.api)

            // 1. The same new objects, first called through both gateways at once: each slot gets one owner, so
            //    every increment lands on one copy.
            let countersA = try await viaA.namespace("COUNTER")
            let countersB = try await viaB.namespace("COUNTER")
            let firstCallErrors = await withTaskGroup(of: String?.self) { group in
                for index in 0..<48 {
                    for counters in [countersA, countersB] {
                        group.addTask {
                            do {
                                _ = try await counters.getByName("first-\(index)").fetch("http://c/increment")
                                return nil
                            } catch {
                                return "first-\(index): \(error)"
                            }
                        }
                    }
                }
                return await group.reduce(into: [String]()) { if let error = $1 { $0.append(error) } }
            }
            #expect(firstCallErrors.isEmpty, "\(firstCallErrors)")
            for index in 0..<48 {
                #expect(try await countersB.getByName("first-\(index)").fetch("http://c/").text() == "2")
            }
            let slotKeys = try await inspector.get(prefix: Array("/durable/default/slots/".utf8)).values
            #expect(slotKeys.allSatisfy { $0.version == 1 }, "each slot's owner was written once")
            let owners = Set(slotKeys.compactMap { Self.owner(in: $0) })
            #expect(owners.count >= 2, "new slots spread over the live nodes: \(owners)")

            // 2. A publish through gateway A is served by gateway B.
            let admin = DurableClient(host: "127.0.0.1", port: gatewayA.port, credentials: TestKeys.admin)
            let published = ExampleApp.configuration.replacingOccurrences(
                of: "  { name = \"COUNTER\", class_name = \"Counter\" },",
                with:
                    "  { name = \"COUNTER\", class_name = \"Counter\" },\n  { name = \"TALLIES\", class_name = \"Counter\" },"
            )
            let _: Durable_V1_PublishResponse = try await admin.call(
                Methods.publish, Durable_V1_PublishRequest.with { $0.configuration = published })
            let publishedAt = ContinuousClock.now
            var servedAfter: Duration?
            while ContinuousClock.now - publishedAt < .seconds(30) {
                do {
                    let _: Durable_V1_ResolveBindingResponse = try await viaB.call(
                        Methods.resolveBinding, Durable_V1_ResolveBindingRequest.with { $0.binding = "TALLIES" })
                    servedAfter = ContinuousClock.now - publishedAt
                    break
                } catch {
                    try await Task.sleep(for: .milliseconds(2))  // measuring how soon B serves it
                }
            }
            let served = try #require(servedAfter, "gateway B never served the binding published through A")
            print(
                "publish through gateway A served by gateway B after \(ClusterOnEtcdTestsFormatting.milliseconds(served)) ms"
            )
            #expect(served < .seconds(1))
            await admin.close()

            // A chat room reached through both gateways: each socket's frames go back through the gateway that
            // holds it (the room's node finds that gateway in etcd by the socket's session).
            let room = "room-\(UUID().uuidString.prefix(8))"
            let (alice, _) = await joinChat(httpPort: try #require(gatewayA.httpPort), room: room, as: "alice")
            let (bob, _) = await joinChat(httpPort: try #require(gatewayB.httpPort), room: room, as: "bob")
            #expect(await nextEvent(alice) == "joined bob")
            alice.send(#"{"message": "across gateways"}"#)
            #expect(await nextChat(bob) == "alice: across gateways")
            #expect(await nextChat(alice) == "alice: across gateways")

            // 3. Gateway A killed under load: the clients continue through B.
            let registers = try await both.namespace("REGISTERS")
            let load = RegisterLoad(namespace: registers, clients: 8, keys: 12)
            let gatewayLoss = try await load.interruption { await gatewayA.crash() }
            print("gateway loss: \(gatewayLoss.summary)")
            #expect(gatewayLoss.failedAfterRetry == 0, "every operation answered within one client retry")

            // Alice's gateway is gone: once its lease ended, the nodes were told the live sessions and closed
            // alice's socket, so the room saw her leave.
            let aliceLeft = Task { await nextEvent(bob) }
            #expect(await finishes(aliceLeft, within: .seconds(60)), "the room heard of alice's socket")
            let event = await aliceLeft.value ?? "nothing"
            #expect(event == "quit alice" || event == "failed alice", "\(event)")
            bob.close()

            // 4. The etcd leader killed under load (new objects claim slots in etcd meanwhile).
            var leader: EtcdProcess?
            for member in etcd.members {
                if let status = try? await inspector.status(of: member.clientURL), status.isLeader {
                    leader = member
                }
            }
            let killedLeader = try #require(leader, "one member leads")
            let counters = try await both.namespace("COUNTER")
            let leaderLoss = try await load.interruption(
                alongside: { index in
                    _ = try await counters.getByName("after-leader-\(index)").fetch("http://c/increment")
                },
                fault: {
                    killedLeader.child.send(SIGKILL)
                    _ = try? await killedLeader.child.exitStatus()
                })
            print("etcd leader loss: \(leaderLoss.summary)")
            #expect(leaderLoss.failedAfterRetry == 0, "every operation answered within one client retry")

            // etcd unreachable for two seconds (both members left stopped): the objects keep answering, since
            // routing and serving need etcd only for slots that have no owner yet.
            let stillRunning = etcd.members.filter { $0 !== killedLeader }
            for member in stillRunning { member.child.send(SIGSTOP) }
            let stoppedAt = ContinuousClock.now
            var answeredWithoutEtcd = 0
            var failedWithoutEtcd: [String] = []
            while ContinuousClock.now - stoppedAt < .seconds(2) {
                do {
                    _ = try await countersB.getByName("first-\(answeredWithoutEtcd % 48)").fetch("http://c/")
                    answeredWithoutEtcd += 1
                } catch {
                    failedWithoutEtcd.append("\(error)")
                    break
                }
            }
            for member in stillRunning { member.child.send(SIGCONT) }
            print(
                "calls answered while etcd was unreachable for 2 s: \(answeredWithoutEtcd), failed: \(failedWithoutEtcd)"
            )
            #expect(failedWithoutEtcd.isEmpty && answeredWithoutEtcd > 10)

            // Every register answers after a gateway and the etcd leader were lost (read before a node goes).
            #expect(await load.readAll(), "every register answers after the faults")

            // 5. A node killed: once its lease expires no new slot goes to it; its objects answer retryable errors.
            let slotsBefore = Set(
                try await inspector.get(prefix: Array("/durable/default/slots/".utf8)).values.map(\.key))
            let victim = "node3"
            let victimIndex = 2
            await nodes[victimIndex].crash()
            #expect(
                await eventually(timeout: .seconds(60), pollingEvery: .milliseconds(100)) {
                    (try? await inspector.get(Array("/durable/default/members/\(victim)".utf8))) == .some(nil)
                }, "the killed node's membership went with its lease")
            // Objects in slots that had no owner yet: each gets a live owner and answers. (Names whose slot was
            // assigned before may belong to the killed node; those are not new slots.)
            let takenSlots = Set(
                slotsBefore.compactMap { UInt16(String(decoding: $0.suffix(4), as: UTF8.self), radix: 16) })
            var newObjects = 0
            for index in 0..<400 where newObjects < 64 {
                let name = "after-node-\(index)"
                guard !takenSlots.contains(PlacementEpochs.slot(of: counters.idFromName(name))) else { continue }
                newObjects += 1
                #expect(try await counters.getByName(name).fetch("http://c/increment").text() == "1")
            }
            let newSlots = try await inspector.get(prefix: Array("/durable/default/slots/".utf8)).values.filter {
                !slotsBefore.contains($0.key)
            }
            let toDeadNode = newSlots.filter { Self.owner(in: $0) == victim }.count
            print("new slots after \(victim)'s lease expired: \(newSlots.count), assigned to it: \(toDeadNode)")
            #expect(newSlots.count >= 40)
            #expect(toDeadNode == 0)
            let onVictim = try #require(
                (0..<48).first { index in
                    let id = countersB.idFromName("first-\(index)")
                    let slot = PlacementEpochs.slot(of: id)
                    return slotKeys.first { String(decoding: $0.key, as: UTF8.self).hasSuffix(Self.slotName(slot)) }
                        .flatMap(Self.owner(in:)) == victim
                })
            do {
                _ = try await counters.getByName("first-\(onVictim)").fetch("http://c/")
                Issue.record("an object of the killed node answered")
            } catch let error as DurableObjectError {
                #expect(error.retryable, "\(error)")
            }

            // `durable cluster status` through gateway B shows it all, and fails since the cluster is degraded.
            let status = try await ChildProcess.run(
                BuiltExecutable.durable,
                ["cluster", "status", "--format", "json", "--gateway", "127.0.0.1:\(gatewayB.port)"],
                environment: TestKeys.environment(included: true))
            #expect(status.status != 0 && status.errors.contains("the cluster is degraded"), "\(status)")
            let report = try #require(
                try JSONSerialization.jsonObject(with: Data(status.output.utf8)) as? [String: Any], "\(status)")
            #expect(report["store"] as? String == "etcd")
            let nodeStates = Dictionary(
                uniqueKeysWithValues: (report["nodes"] as? [[String: Any]] ?? []).map {
                    ($0["id"] as? String ?? "?", $0["state"] as? String ?? "?")
                })
            #expect(nodeStates == ["node1": "live", "node2": "live", "node3": "dead"], "\(report)")
            let members = report["etcdMembers"] as? [[String: Any]] ?? []
            #expect(members.count == 3 && members.filter { $0["error"] != nil }.count == 1, "\(members)")
            #expect(members.filter { $0["leader"] as? Bool == true }.count == 1, "the two left elected a leader")
            #expect(
                await eventually(timeout: .seconds(30)) {
                    let again = try? await ChildProcess.run(
                        BuiltExecutable.durable,
                        ["cluster", "status", "--format", "json", "--gateway", "127.0.0.1:\(gatewayB.port)"],
                        environment: TestKeys.environment(included: true))
                    let gateways =
                        (again.flatMap {
                            try? JSONSerialization.jsonObject(with: Data($0.output.utf8)) as? [String: Any]
                        })?[
                            "gateways"] as? [[String: Any]]
                    return gateways?.count == 1
                }, "the killed gateway's announcement went with its lease")

            // A slot moves from node1 to node2 through gateway B; gateway-agnostic: the record lives in etcd.
            let movable = try #require(
                (0..<48).first { index in
                    let slot = PlacementEpochs.slot(of: countersB.idFromName("first-\(index)"))
                    return slotKeys.first { String(decoding: $0.key, as: UTF8.self).hasSuffix(Self.slotName(slot)) }
                        .flatMap(Self.owner(in:)) == "node1"
                })
            let movedSlot = PlacementEpochs.slot(of: countersB.idFromName("first-\(movable)"))
            let move = try await ChildProcess.run(
                BuiltExecutable.durable,
                ["slots", "move", "\(movedSlot)", "--to", "node2", "--gateway", "127.0.0.1:\(gatewayB.port)"],
                environment: TestKeys.environment(included: true))
            #expect(move.status == 0 && move.output.contains("from node1 to node2"), "\(move)")
            #expect(try await countersB.getByName("first-\(movable)").fetch("http://c/").text() == "2")
            let movedRecord = try await inspector.get(Array("/durable/default/\(Self.slotName(movedSlot))".utf8))
            #expect(movedRecord.flatMap(Self.owner(in:)) == "node2")

            // Every history is linearizable, the final reads of every register included.
            let reports = LinearizabilityChecker().report(load.history)
            let failures = reports.filter { report in
                if case .linearizable = report.result { return false }
                return true
            }
            print(
                "linearizability: \(reports.count) keys, \(load.history.count) operations, \(failures.count) not linearizable"
            )
            #expect(failures.isEmpty, "\(failures)")

            for client in [viaA, viaB, both] { await client.close() }
            _ = await gatewayB.stop()
            for (index, node) in nodes.enumerated() where index != victimIndex { _ = await node.stop() }
        }

        /// The node that owns a slot, from its record in etcd.
        static func owner(in value: KeyValue) -> String? {
            let record = try? JSONSerialization.jsonObject(with: Data(value.value)) as? [String: Any]
            return record?["nodeID"] as? String
        }

        static func slotName(_ slot: UInt16) -> String {
            let hex = String(slot, radix: 16)
            return "slots/" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
        }
    }
}

/// Clients writing and reading registers back to back, each retrying a failed operation once, with the history of
/// every operation for the linearizability checker.
final class RegisterLoad: Sendable {
    /// What a fault cost the clients.
    struct Interruption {
        /// Per client: from the fault to its first acknowledged operation after it.
        var recoveries: [Duration]
        /// Operations that failed, and failed again when retried at once.
        var failedAfterRetry: Int
        /// Operations that failed once (then retried).
        var retried: Int

        var summary: String {
            let sorted = recoveries.sorted()
            func percentile(_ share: Double) -> String {
                guard !sorted.isEmpty else { return "-" }
                let duration = sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * share + 0.5))]
                return ClusterOnEtcdTestsFormatting.milliseconds(duration)
            }
            return "interruption per client p50 \(percentile(0.5)) ms, p99 \(percentile(0.99)) ms "
                + "(\(sorted.count) clients: \(sorted.map { ClusterOnEtcdTestsFormatting.milliseconds($0) }.joined(separator: " "))), "
                + "\(retried) operations retried once, \(failedAfterRetry) failed twice"
        }
    }

    private let namespace: DurableObjectNamespace
    private let clients: Int
    private let names: [String]
    private let entries = Mutex<[HistoryEntry]>([])
    private let origin = ContinuousClock.now

    /// Clients on `keys` registers named `register-<n>`, or on the registers `names`.
    init(namespace: DurableObjectNamespace, clients: Int, keys: Int = 0, names: [String]? = nil) {
        self.namespace = namespace
        self.clients = clients
        self.names = names ?? (0..<keys).map { "register-\($0)" }
    }

    /// Every operation so far.
    var history: [HistoryEntry] { entries.withLock { $0 } }

    /// Runs the clients (and `alongside`, called with a counter, in a task of its own), injects `fault` once each
    /// client has 20 acknowledged operations, and stops once each has 40 more after it.
    func interruption(
        alongside: (@Sendable (Int) async throws -> Void)? = nil, fault: @Sendable () async -> Void
    ) async throws -> Interruption {
        let run = Run(clients: clients)
        let readyForFault = AsyncStream<Void>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                group.addTask { [self] in
                    var sequence = 0
                    while !run.stop.load(ordering: .relaxed) {
                        sequence += 1
                        let key = names.randomElement()!
                        let value = client * 1_000_000 + sequence
                        let write = sequence % 2 == 0
                        var ok = await operation(client: client, key: key, value: value, write: write)
                        if !ok {
                            run.state.withLock { $0.retried += 1 }
                            ok = await operation(client: client, key: key, value: value + 500_000, write: write)
                            if !ok { run.state.withLock { $0.failedTwice += 1 } }
                        }
                        guard ok else { continue }
                        if run.acknowledged(by: client) { readyForFault.continuation.yield() }
                    }
                }
            }
            if let alongside {
                group.addTask {
                    var index = 0
                    while !run.stop.load(ordering: .relaxed) {
                        index += 1
                        do { try await alongside(index) } catch { try? await Task.sleep(for: .milliseconds(20)) }
                    }
                }
            }
            for await _ in readyForFault.stream { break }
            run.state.withLock { $0.faultedAt = ContinuousClock.now }
            await fault()
            try await group.waitForAll()
        }
        let final = run.state.withLock { $0 }
        return Interruption(
            recoveries: final.recoveries.compactMap { $0 }, failedAfterRetry: final.failedTwice,
            retried: final.retried)
    }

    /// The counters of one ``interruption(alongside:fault:)``.
    private final class Run: Sendable {
        struct State {
            var faultedAt: ContinuousClock.Instant?
            var before: [Int]
            var after: [Int]
            var recoveries: [Duration?]
            var retried = 0
            var failedTwice = 0
        }
        let state: Mutex<State>
        let stop = Atomic<Bool>(false)

        init(clients: Int) {
            state = Mutex(
                State(
                    before: Array(repeating: 0, count: clients), after: Array(repeating: 0, count: clients),
                    recoveries: Array(repeating: nil, count: clients)))
        }

        /// Counts an acknowledged operation of `client`; whether every client has had 20 before the fault (time
        /// for it). Stops the run once each has had 40 after it.
        func acknowledged(by client: Int) -> Bool {
            let (ready, done) = state.withLock { state -> (Bool, Bool) in
                if let at = state.faultedAt {
                    state.after[client] += 1
                    if state.recoveries[client] == nil { state.recoveries[client] = ContinuousClock.now - at }
                    return (false, state.after.allSatisfy { $0 >= 40 })
                }
                state.before[client] += 1
                return (state.before.allSatisfy { $0 >= 20 }, false)
            }
            if done { stop.store(true, ordering: .relaxed) }
            return ready
        }
    }

    /// Client `client` reading and writing the registers in turn, back to back (a failed operation is not retried),
    /// until the task is cancelled.
    func run(client: Int) async {
        var sequence = 0
        while !Task.isCancelled {
            sequence += 1
            let key = names.randomElement()!
            let acknowledged = await operation(
                client: client, key: key, value: client * 1_000_000 + sequence, write: sequence % 2 == 0)
            if !acknowledged { try? await Task.sleep(for: .milliseconds(50)) }
        }
    }

    /// Reads every register once (recorded); whether all answered.
    func readAll() async -> Bool {
        var all = true
        for key in names where !(await operation(client: clients, key: key, value: 0, write: false)) {
            all = false
        }
        return all
    }

    /// One read or write, recorded; whether it was acknowledged.
    private func operation(client: Int, key: String, value: Int, write: Bool) async -> Bool {
        var entry = HistoryEntry(
            key: key, client: client, operation: write ? .write(value) : .read, invoked: now, completed: nil,
            outcome: .unknown)
        var ok = false
        do {
            let stub = namespace.getByName(key)
            let response =
                write
                ? try await stub.fetch("http://r/register/write?value=\(value)", method: .post)
                : try await stub.fetch("http://r/register")
            let text = response.text()
            if response.status == .ok {
                entry.completed = now
                if write {
                    entry.outcome = .written
                } else {
                    entry.outcome = .read(text == "unset" ? nil : Int(text))
                }
                ok = true
            }
        } catch let error as DurableObjectError where error.overloaded || Self.refusedBeforeRunning(error) {
            entry.outcome = .failed
            entry.completed = now
        } catch {
            entry.outcome = .unknown
        }
        let recorded = entry
        entries.withLock { $0.append(recorded) }
        return ok
    }

    /// Refusals that say the call never reached its object: its slot is moving, was handed to another node, or the
    /// call came with a stale placement epoch. Such a write did not happen (any other error leaves it unknown).
    static func refusedBeforeRunning(_ error: DurableObjectError) -> Bool {
        error.retryable
            && ["is moving to node", "is handed to another node", "Stale placement epoch"].contains {
                error.message.contains($0)
            }
    }

    private var now: UInt64 {
        let elapsed = ContinuousClock.now - origin
        return UInt64(elapsed.components.seconds) * 1_000_000_000
            + UInt64(elapsed.components.attoseconds / 1_000_000_000)
    }
}

enum ClusterOnEtcdTestsFormatting {
    static func milliseconds(_ duration: Duration) -> String {
        String(
            format: "%.1f", Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15)
    }
}
