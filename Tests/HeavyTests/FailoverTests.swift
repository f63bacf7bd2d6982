import DurableChaos
import DurableClient
import DurableEtcd
import DurableGateway
import DurableObjects
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension WholeMachineTests {
    /// Replication to a standby and automatic failover on etcd, with real processes: faults under load, then every
    /// acknowledged increment must be there and every register's history linearizable.
    @Suite("Failover (real processes, real etcd)")
    struct FailoverTests {
        @Test(
            "kill the primary and delete its data, pause it past its lease, cut it off from etcd or its standby, cut the gateway off from it, kill the standby, kill the etcd leader: no acknowledged write is lost"
        )
        func faultsUnderLoad() async throws {
            let faults = Int(ProcessInfo.processInfo.environment["DURABLE_FAILOVER_FAULTS"] ?? "") ?? 7
            let report = try await FailoverRun.run(faults: faults, onHostsOfTheirOwn: NetworkLab.isAvailable)
            print(report.summary)
            #expect(report.lost == 0, "\(report.summary)")
            #expect(report.overCounted == 0, "\(report.summary)")
            #expect(report.faults == faults)
            #expect(report.failoverTimes.count == report.primaryFaults)
            #expect(report.aloneTransitionsLogged > 0 || report.standbyFaults == 0, "\(report.summary)")
            #expect(
                report.fencedExits == report.pauseFaults + report.partitionFaults, "\(report.summary)")
            #expect(
                report.staleAcknowledged == 0
                    && report.staleRefused == report.pauseFaults + report.partitionFaults, "\(report.summary)")
            #expect(report.leaderLossRecoveries.count == report.etcdLeaderFaults, "\(report.summary)")
            #expect(report.gatewayPartitionRecoveries.count == report.gatewayPartitionFaults, "\(report.summary)")
            #expect(report.notLinearizable.isEmpty, "\(report.notLinearizable)")
            #expect(report.undecidedKeys == 0, "\(report.summary)")
            #expect(
                report.socketCloses.values.joined().allSatisfy { $0 == "1012" }, "\(report.socketSummary)")
        }
    }
}

/// One fault run: a 3-member etcd, a gateway, node a (primary) and node b (its standby), counters incremented and
/// registers written and read by clients while faults come one after the other, each followed by the faulty process
/// starting again and the pair getting in step again.
///
/// On hosts of their own (``NetworkLab``, as root), the gateway, each node and etcd run in network namespaces of
/// their own, so that the primary can be cut off from etcd alone; without, everything runs on loopback and that
/// fault is left out.
enum FailoverRun {
    enum Fault: String, CaseIterable {
        case killPrimaryAndDeleteData
        case pausePrimaryPastLease
        case partitionPrimaryFromEtcd
        case partitionPrimaryFromStandby
        case partitionGatewayFromPrimary
        case killStandby
        case killEtcdLeader

        var isPrimaryFault: Bool {
            [.killPrimaryAndDeleteData, .pausePrimaryPastLease, .partitionPrimaryFromEtcd].contains(self)
        }

        /// Whether it needs hosts of their own (a ``NetworkLab``).
        var isPartition: Bool {
            [.partitionPrimaryFromEtcd, .partitionPrimaryFromStandby, .partitionGatewayFromPrimary].contains(self)
        }
    }

    struct Report {
        var onHostsOfTheirOwn = false
        var faults = 0
        var primaryFaults = 0
        var pauseFaults = 0
        var partitionFaults = 0
        var standbyFaults = 0
        var standbyPartitionFaults = 0
        var gatewayPartitionFaults = 0
        var etcdLeaderFaults = 0
        /// From the end of a partition of the gateway from the primary to the first successful call begun after it.
        var gatewayPartitionRecoveries: [Duration] = []
        var failoverTimes: [Duration] = []
        var leaderLossRecoveries: [Duration] = []
        var acknowledged = 0
        var unknown = 0
        var lost = 0
        var overCounted = 0
        var aloneTransitionsLogged = 0
        var fencedExits = 0
        var staleAcknowledged = 0
        var staleRefused = 0
        /// How each replaced primary refused the increment at its old epoch (distinct texts).
        var staleRefusals: Set<String> = []
        var registerKeys = 0
        var registerOperations = 0
        var registerUnknown = 0
        var notLinearizable: [String] = []
        var undecidedKeys = 0
        /// Per primary fault: how a chat WebSocket open on the primary before it ended ("1012", another code, or
        /// "no close frame").
        var socketCloses: [Fault: [String]] = [:]
        var seconds: Double = 0

        static func percentile(_ durations: [Duration], _ p: Double) -> String {
            let sorted = durations.sorted()
            guard !sorted.isEmpty else { return "-" }
            let index = max(0, min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1))
            return String(
                format: "%.2f s",
                Double(sorted[index].components.attoseconds) / 1e18 + Double(sorted[index].components.seconds))
        }

        /// Per fault, the close codes seen and how often.
        var socketSummary: String {
            socketCloses.sorted { $0.key.rawValue < $1.key.rawValue }.map { fault, codes in
                let counts = Dictionary(grouping: codes) { $0 }.mapValues(\.count).sorted { $0.key < $1.key }
                return "\(fault): " + counts.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
            }.joined(separator: "; ")
        }

        var summary: String {
            let killed = primaryFaults - pauseFaults - partitionFaults
            return """
                failover run: \(faults) faults (\(killed) primary killed with its data deleted, \(pauseFaults) primary \
                paused past its lease, \(partitionFaults) primary cut off from etcd, \(standbyPartitionFaults) primary \
                cut off from its standby, \(gatewayPartitionFaults) gateway cut off from the primary, \(standbyFaults) \
                standby killed, \(etcdLeaderFaults) etcd leader killed) in \(String(format: "%.0f", seconds)) s, \
                \(onHostsOfTheirOwn ? "each process on a network namespace of its own" : "on loopback")
                  increments acknowledged \(acknowledged), outcome unknown \(unknown); lost \(lost), counted beyond \
                acknowledged+unknown \(overCounted)
                  registers: \(registerOperations) operations on \(registerKeys) keys (\(registerUnknown) of unknown \
                outcome): \(notLinearizable.count) keys not linearizable, \(undecidedKeys) undecided
                  failover (fault to first successful call begun after it), \(failoverTimes.count) failovers: p50 \
                \(Self.percentile(failoverTimes, 0.5)), p99 \(Self.percentile(failoverTimes, 0.99)), max \
                \(Self.percentile(failoverTimes, 1.0))
                  gateway cut off from the primary: first successful call begun after the partition ended, p50 \
                \(Self.percentile(gatewayPartitionRecoveries, 0.5)), max \(Self.percentile(gatewayPartitionRecoveries, 1.0))
                  etcd leader killed: first successful call begun after it, p50 \
                \(Self.percentile(leaderLossRecoveries, 0.5)), max \(Self.percentile(leaderLossRecoveries, 1.0))
                  replaced primaries (paused or cut off) that stopped as replaced: \(fencedExits); increments sent to \
                them at their old epoch after the takeover: \(staleRefused) refused, \(staleAcknowledged) acknowledged; \
                refusals: \(staleRefusals.sorted().joined(separator: " | "))
                  "running without standby" logged \(aloneTransitionsLogged) times
                  a chat WebSocket open on the replaced primary closed with: \(socketSummary)
                """
        }
    }

    /// Counters and what was acknowledged of them.
    final class Load: Sendable {
        struct Tally {
            var acknowledged: [Int]
            var unknown: [Int]
            var successStarts: [ContinuousClock.Instant] = []
            var lastErrors: [String] = []
            var lastFailure: ContinuousClock.Instant?
        }
        let names: [String]
        let tally: Mutex<Tally>
        init(count: Int) {
            names = (0..<count).map { "failover-\($0)" }
            tally = Mutex(
                Tally(acknowledged: Array(repeating: 0, count: count), unknown: Array(repeating: 0, count: count)))
        }

        /// Increments the counters in turn until cancelled; `pause` between calls (a prober, with a short
        /// deadline, starts a new call every `pause`: the first to succeed after a fault times the failover).
        func run(client: DurableClient, offset: Int, pause: Duration = .zero) async {
            guard let namespace = try? await client.namespace("COUNTER") else { return }
            var index = offset
            while !Task.isCancelled {
                index = (index + 1) % names.count
                let started = ContinuousClock.now
                do {
                    let stub = namespace.getByName(names[index])
                    _ = try await stub.fetch("http://c/increment")
                    tally.withLock {
                        $0.acknowledged[index] += 1
                        $0.successStarts.append(started)
                    }
                    if pause > .zero { try? await Task.sleep(for: pause) }
                } catch {
                    tally.withLock {
                        $0.unknown[index] += 1
                        $0.lastErrors.append("\(ContinuousClock.now): \(error)")
                        $0.lastFailure = ContinuousClock.now
                        if $0.lastErrors.count > 20 { $0.lastErrors.removeFirst() }
                    }
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
        }

        func firstSuccess(startedAfter instant: ContinuousClock.Instant) -> ContinuousClock.Instant? {
            tally.withLock { $0.successStarts.filter { $0 >= instant }.min() }
        }
    }

    static func run(faults: Int, onHostsOfTheirOwn: Bool) async throws -> Report {
        let began = ContinuousClock.now
        let folder = TemporaryDirectory("failover")
        var report = Report(onHostsOfTheirOwn: onHostsOfTheirOwn)
        // Hosts: the gateway, node a, node b, etcd (its three members).
        let lab = onHostsOfTheirOwn ? try await NetworkLab.make(hosts: 4) : nil
        let gatewayHost = lab?.hosts[0]
        let nodeHosts = ["a": lab?.hosts[1], "b": lab?.hosts[2]]
        let etcdHost = lab?.hosts[3]
        let etcd: EtcdCluster
        do {
            etcd = try await EtcdCluster.start(
                members: 3, folder: folder.child("etcd"), address: etcdHost?.address ?? "127.0.0.1", on: etcdHost)
        } catch {
            await lab?.remove()
            throw error
        }
        let etcdClient = try EtcdClient(endpoints: [etcd.endpoints], logger: Logger(label: "test.etcd"))
        var processes: [String: ServerProcess] = [:]
        var gateway: ServerProcess?
        var loaders: [Task<Void, Never>] = []
        do {
            let common = ["--etcd", etcd.endpoints, "--lease-ttl", "3", "--log-level", "info"]
            if let lab, let gatewayHost {
                gateway = try await lab.launch(
                    on: gatewayHost,
                    [
                        "gateway", "--host", gatewayHost.address, "--rpc-port", "0", "--port", "0", "--data",
                        folder.child("gateway"),
                    ] + common, dataDirectory: folder.child("gateway"))
            } else {
                gateway = try await ServerProcess.gateway(dataDirectory: folder.child("gateway"), arguments: common)
            }
            let gatewayAddress = gatewayHost?.address ?? "127.0.0.1"
            func startNode(_ id: String, standbyFor: String?) async throws -> ServerProcess {
                let arguments =
                    ["--node-id", id] + common + (standbyFor.map { ["--standby-for", $0] } ?? [])
                if let lab, let host = nodeHosts[id] ?? nil {
                    return try await lab.launch(
                        on: host,
                        ["node", "--host", host.address, "--port", "0", "--data", folder.child(id)] + arguments,
                        dataDirectory: folder.child(id))
                }
                return try await ServerProcess.node(dataDirectory: folder.child(id), arguments: arguments)
            }
            processes["a"] = try await startNode("a", standbyFor: nil)
            processes["b"] = try await startNode("b", standbyFor: "a")
            let client = DurableClient(
                host: gatewayAddress, port: gateway!.port, defaultTimeout: .seconds(10), credentials: TestKeys.api)
            let load = Load(count: 16)
            // One increment each first, so that every counter's slot is placed on the primary.
            let namespace = try await client.namespace("COUNTER")
            for (index, name) in load.names.enumerated() {
                _ = try await namespace.getByName(name).fetch("http://c/increment")
                load.tally.withLock { $0.acknowledged[index] += 1 }
            }
            let registers = RegisterLoad(namespace: try await client.namespace("REGISTERS"), clients: 2, keys: 12)
            #expect(await registers.readAll(), "every register answers before the faults")

            let keys = ReplicationKeys(cluster: "default")
            /// The node's role as etcd records it.
            func role(of node: String) async throws -> NodeTerm? {
                try await etcdClient.get(keys.term(node)).flatMap { NodeTerm($0.value) }
            }
            /// What the primary `node` records of its standby.
            func record(of node: String) async -> ReplicationRecord? {
                guard let value = try? await etcdClient.get(keys.record(node))?.value else { return nil }
                return try? JSONDecoder().decode(ReplicationRecord.self, from: Data(value))
            }
            func slotEpoch(_ slot: UInt16) async throws -> UInt64 {
                let hex = String(slot, radix: 16)
                let key = "/durable/default/slots/" + String(repeating: "0", count: 4 - hex.count) + hex
                guard let value = try await etcdClient.get(Array(key.utf8))?.value,
                    let record = try JSONSerialization.jsonObject(with: Data(value)) as? [String: Any],
                    let epoch = record["epoch"] as? Int
                else { return 0 }
                return UInt64(epoch)
            }
            func primary() async throws -> String {
                if case .primary = try await role(of: "a") { return "a" }
                return "b"
            }
            func inStep(primary: String, standby: String) async -> Bool {
                guard case .primary = try? await role(of: primary), let record = await record(of: primary) else {
                    return false
                }
                return record.inStep && record.standby == standby
            }
            /// Whether etcd records that `node` runs without its standby.
            func runsAlone(_ node: String) async -> Bool {
                await record(of: node)?.inStep == false
            }
            /// Prints what every process said, the cluster's keys in etcd and the load's last errors.
            func dump(_ why: String) async {
                print("--- \(why)")
                for (name, process) in processes { print("--- \(name):\n\(process.child.errorText.suffix(12000))") }
                print("--- gateway:\n\(gateway!.child.errorText.suffix(3000))")
                if let keys = try? await etcdClient.get(prefix: Array("/durable/default/".utf8)) {
                    for value in keys.values where !String(decoding: value.key, as: UTF8.self).contains("registry") {
                        print(
                            "etcd \(String(decoding: value.key, as: UTF8.self)) = \(String(decoding: value.value.prefix(200), as: UTF8.self)) lease \(value.lease)"
                        )
                    }
                }
                print("--- load: \(load.tally.withLock { ($0.acknowledged, $0.unknown, $0.lastErrors) })")
            }
            #expect(await eventually(timeout: .seconds(60)) { await inStep(primary: "a", standby: "b") })
            /// What `durable cluster status` says of replication: each node's role, partner and state, and whether it
            /// called the cluster degraded (with its message).
            func clusterStatus() async throws -> (nodes: [String: String], degraded: String?) {
                let outcome = try await ChildProcess.run(
                    BuiltExecutable.durable,
                    ["cluster", "status", "--format", "json", "--gateway", "\(gatewayAddress):\(gateway!.port)"],
                    environment: TestKeys.environment(included: true))
                let report = try JSONSerialization.jsonObject(with: Data(outcome.output.utf8)) as? [String: Any]
                var nodes: [String: String] = [:]
                for entry in report?["replication"] as? [[String: Any]] ?? [] {
                    let partner = (entry["standby"] ?? entry["primary"]) as? String ?? "-"
                    nodes[entry["id"] as? String ?? "?"] =
                        "\(entry["role"] ?? "?") \(partner) \(entry["state"] as? String ?? "-")"
                }
                return (nodes, outcome.status == 0 ? nil : outcome.errors)
            }
            let statusInStep = try await clusterStatus()
            #expect(
                statusInStep.nodes == ["a": "primary b in step", "b": "standby a -"] && statusInStep.degraded == nil,
                "durable cluster status: \(statusInStep)")

            let prober = DurableClient(
                host: gatewayAddress, port: gateway!.port, defaultTimeout: .milliseconds(500),
                credentials: TestKeys.api)
            loaders = (0..<2).map { offset in Task { await load.run(client: client, offset: offset * 8) } }
            loaders.append(Task { await load.run(client: prober, offset: 4, pause: .milliseconds(100)) })
            loaders += (0..<2).map { number in Task { await registers.run(client: number) } }
            let cycle = Fault.allCases.filter { lab != nil || !$0.isPartition }
            for number in 0..<faults {
                let fault = cycle[number % cycle.count]
                let primaryNode = try await primary()
                let standbyNode = primaryNode == "a" ? "b" : "a"
                // Before a primary fault, a chat WebSocket on one of the primary's objects: the failover closes it
                // with 1012 (the client reconnects and reaches the room on the new primary).
                let chatClose = CloseCode()
                var chatWatcher: Task<Void, Never>?
                if fault.isPrimaryFault {
                    let (chat, _) = await joinChat(
                        host: gatewayAddress, httpPort: gateway!.httpPort!, room: "failover-\(number)", as: "watcher")
                    chatWatcher = Task {
                        let code = await chat.closeCode()
                        chatClose.code.withLock { $0 = .some(code) }
                    }
                }
                // Some load first, so that the fault lands on writes in flight.
                try await Task.sleep(for: .milliseconds(300))
                let faultAt = ContinuousClock.now
                switch fault {
                case .killPrimaryAndDeleteData, .pausePrimaryPastLease, .partitionPrimaryFromEtcd:
                    report.primaryFaults += 1
                    let victim = processes[primaryNode]!
                    let oracleID = namespace.getByName(load.names[0]).id
                    let epochBefore = try await slotEpoch(PlacementEpochs.slot(of: oracleID))
                    switch fault {
                    case .killPrimaryAndDeleteData:
                        await victim.crash()
                        try FileManager.default.removeItem(atPath: folder.child(primaryNode))
                    case .pausePrimaryPastLease:
                        report.pauseFaults += 1
                        victim.child.send(SIGSTOP)
                    default:
                        report.partitionFaults += 1
                        try await lab!.partition(nodeHosts[primaryNode]!!, etcdHost!)
                    }
                    #expect(
                        try await eventually(timeout: .seconds(30)) { try await primary() == standbyNode },
                        "fault \(number + 1): \(standbyNode) did not take over")
                    #expect(
                        await eventually(timeout: .seconds(30)) { load.firstSuccess(startedAfter: faultAt) != nil },
                        "fault \(number + 1): no call succeeded after the failover")
                    if let first = load.firstSuccess(startedAfter: faultAt) {
                        report.failoverTimes.append(first - faultAt)
                    } else {
                        await dump("fault \(number + 1): no call succeeded after the failover")
                    }
                    let socketClosed = await eventually(timeout: .seconds(30)) {
                        chatClose.code.withLock { $0 } != nil
                    }
                    chatWatcher?.cancel()
                    let code = chatClose.code.withLock { $0 }.map { $0.map(String.init) ?? "no close frame" }
                    report.socketCloses[fault, default: []].append(socketClosed ? code ?? "-" : "still open")
                    if fault != .killPrimaryAndDeleteData {
                        // The fencing oracle: the replaced primary (woken, or still cut off from etcd) is sent an
                        // increment directly, at the epoch it served the slot at; it must not acknowledge it (its
                        // term is over).
                        let direct = DurableClient(
                            host: nodeHosts[primaryNode]??.address ?? "127.0.0.1", port: victim.port,
                            defaultTimeout: .seconds(5), credentials: TestKeys.cluster)
                        let probe = Task {
                            try await direct.invoke(
                                namespaceID: namespace.namespaceID, id: oracleID,
                                request: Request(url: "http://c/increment"), timeout: .seconds(5),
                                epoch: epochBefore)
                        }
                        if fault == .pausePrimaryPastLease { victim.child.send(SIGCONT) }
                        switch await probe.result {
                        case .success:
                            report.staleAcknowledged += 1
                            load.tally.withLock { $0.unknown[0] += 1 }
                        case .failure(let error):
                            report.staleRefused += 1
                            let text = (error as? DurableObjectError)?.message ?? "\(error)"
                            // One line per kind of refusal: addresses, terms and ports differ from fault to fault.
                            let kind = text.prefix(100).replacingOccurrences(
                                of: "[0-9][0-9.:]*", with: "N", options: .regularExpression)
                            report.staleRefusals.insert("\(fault): \(kind)")
                        }
                        await direct.close()
                        if fault == .partitionPrimaryFromEtcd {
                            try await lab!.heal(nodeHosts[primaryNode]!!, etcdHost!)
                        }
                        // The old primary finds its term over and stops, saying so.
                        let outcome = try await victim.child.outcome(within: .seconds(60))
                        if outcome.status != 0 && outcome.errors.contains("was replaced by its standby") {
                            report.fencedExits += 1
                        } else {
                            Issue.record(
                                "fault \(number + 1): the replaced primary did not stop as replaced: \(outcome)")
                        }
                    }
                    // It comes back as the new primary's standby.
                    report.aloneTransitionsLogged += aloneLines(victim)
                    processes[primaryNode] = try await startNode(primaryNode, standbyFor: nil)
                case .partitionPrimaryFromStandby:
                    // The primary no longer reaches its standby (both still reach etcd and the gateway): it records
                    // that it runs alone and writes go on; healed, the standby catches up and is in step again.
                    report.standbyPartitionFaults += 1
                    try await lab!.partition(nodeHosts[primaryNode]!!, nodeHosts[standbyNode]!!)
                    #expect(
                        await eventually(timeout: .seconds(30)) {
                            load.firstSuccess(startedAfter: faultAt + .milliseconds(1500)) != nil
                        }, "fault \(number + 1): writes did not go on without the standby")
                    #expect(
                        await eventually(timeout: .seconds(30)) { await runsAlone(primaryNode) },
                        "fault \(number + 1): the primary did not record that it runs alone")
                    try await lab!.heal(nodeHosts[primaryNode]!!, nodeHosts[standbyNode]!!)
                case .partitionGatewayFromPrimary:
                    // The gateway no longer reaches the primary (which keeps its lease): calls fail until the
                    // partition ends, then go on, and no failover happens.
                    report.gatewayPartitionFaults += 1
                    try await lab!.partition(gatewayHost!, nodeHosts[primaryNode]!!)
                    #expect(
                        await eventually(timeout: .seconds(30)) {
                            load.tally.withLock { $0.lastFailure }.map { $0 > faultAt } ?? false
                        }, "fault \(number + 1): calls went on while the gateway could not reach the primary")
                    try await lab!.heal(gatewayHost!, nodeHosts[primaryNode]!!)
                    let healedAt = ContinuousClock.now
                    #expect(
                        await eventually(timeout: .seconds(30)) { load.firstSuccess(startedAfter: healedAt) != nil },
                        "fault \(number + 1): no call succeeded after the partition ended")
                    if let first = load.firstSuccess(startedAfter: healedAt) {
                        report.gatewayPartitionRecoveries.append(first - healedAt)
                    }
                    #expect(try await primary() == primaryNode, "fault \(number + 1): a failover while the lease held")
                case .killStandby:
                    report.standbyFaults += 1
                    await processes[standbyNode]!.crash()
                    report.aloneTransitionsLogged += aloneLines(processes[standbyNode]!)
                    // Writes go on once the primary recorded that it runs alone.
                    #expect(
                        await eventually(timeout: .seconds(30)) {
                            load.firstSuccess(startedAfter: faultAt + .milliseconds(1500)) != nil
                        }, "fault \(number + 1): writes did not go on without the standby")
                    if report.standbyFaults == 1 {
                        // The cluster status shows it, and calls the cluster degraded.
                        let alone = try await clusterStatus()
                        #expect(
                            alone.nodes[primaryNode] == "primary \(standbyNode) running alone"
                                && alone.degraded?.contains("running without their standby: \(primaryNode)") == true,
                            "durable cluster status: \(alone)")
                    }
                    processes[standbyNode] = try await startNode(standbyNode, standbyFor: primaryNode)
                case .killEtcdLeader:
                    report.etcdLeaderFaults += 1
                    var leader: Int?
                    for (index, member) in etcd.members.enumerated() {
                        if let status = try? await etcdClient.status(of: member.clientURL), status.isLeader {
                            leader = index
                        }
                    }
                    let index = try #require(leader, "fault \(number + 1): one etcd member leads")
                    etcd.members[index].child.send(SIGKILL)
                    _ = try? await etcd.members[index].child.exitStatus()
                    // Calls go on: the two members left elect a leader, and leases outlive the election.
                    #expect(
                        await eventually(timeout: .seconds(30)) { load.firstSuccess(startedAfter: faultAt) != nil },
                        "fault \(number + 1): no call succeeded after the etcd leader was killed")
                    if let first = load.firstSuccess(startedAfter: faultAt) {
                        report.leaderLossRecoveries.append(first - faultAt)
                    }
                    try await etcd.restart(index)
                }
                // Every node runs again (one fenced by a failover the fault caused is started again as standby),
                // and the pair is in step before the next fault.
                for (id, process) in processes where !process.child.isRunning {
                    report.aloneTransitionsLogged += aloneLines(process)
                    processes[id] = try await startNode(id, standbyFor: nil)
                }
                let settled = await eventually(timeout: .seconds(60)) {
                    guard let now = try? await primary() else { return false }
                    return await inStep(primary: now, standby: now == "a" ? "b" : "a")
                }
                if !settled { await dump("fault \(number + 1): the pair did not get in step again") }
                #expect(settled, "fault \(number + 1) (\(fault)): the pair did not get in step again")
                report.faults += 1
                print("fault \(number + 1)/\(faults): \(fault) done")
            }
            for loader in loaders { loader.cancel() }
            for loader in loaders { await loader.value }
            loaders = []

            // Every acknowledged increment is there.
            let tally = load.tally.withLock { $0 }
            for (index, name) in load.names.enumerated() {
                let value = try await retrying {
                    Int(try await namespace.getByName(name).fetch("http://c/").text()) ?? -1
                }
                if value < tally.acknowledged[index] { report.lost += tally.acknowledged[index] - value }
                if value > tally.acknowledged[index] + tally.unknown[index] { report.overCounted += 1 }
            }
            report.acknowledged = tally.acknowledged.reduce(0, +)
            report.unknown = tally.unknown.reduce(0, +)
            // Every register's history is linearizable, with a final read of each.
            #expect(await eventually(timeout: .seconds(30)) { await registers.readAll() })
            let history = registers.history
            let checked = LinearizabilityChecker().report(history)
            report.registerKeys = checked.count
            report.registerOperations = history.count
            report.registerUnknown = history.filter { $0.outcome == .unknown }.count
            for key in checked {
                switch key.result {
                case .linearizable: break
                case .notLinearizable(let name, let explanation):
                    report.notLinearizable.append("\(name): \(explanation)")
                case .undecided: report.undecidedKeys += 1
                }
            }
            for process in processes.values { report.aloneTransitionsLogged += aloneLines(process) }
            await client.close()
            await prober.close()
        } catch {
            for loader in loaders { loader.cancel() }
            for process in processes.values { _ = await process.stop() }
            if let gateway { _ = await gateway.stop() }
            await etcdClient.close()
            await etcd.stop()
            await lab?.remove()
            throw error
        }
        for process in processes.values { _ = await process.stop() }
        if let gateway { _ = await gateway.stop() }
        await etcdClient.close()
        await etcd.stop()
        await lab?.remove()
        report.seconds = Double((ContinuousClock.now - began).components.seconds)
        return report
    }

    /// The close code a WebSocket ended with, once it ended.
    final class CloseCode: Sendable {
        let code = Mutex<Int??>(nil)
    }

    static func aloneLines(_ process: ServerProcess) -> Int {
        process.child.errorText.components(separatedBy: "running without standby").count - 1
    }

    /// Runs `body` until it does not throw (a call refused while the cluster settles), for up to 30 s.
    static func retrying<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do {
                return try await body()
            } catch {
                if ContinuousClock.now > deadline { throw error }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}
