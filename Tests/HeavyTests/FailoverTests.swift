import DurableClient
import DurableEtcd
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
    /// acknowledged increment must be there.
    @Suite("Failover (real processes, real etcd)")
    struct FailoverTests {
        @Test(
            "kill the primary and delete its data, pause it past its lease, kill the standby: no acknowledged write is lost"
        )
        func faultsUnderLoad() async throws {
            let faults = Int(ProcessInfo.processInfo.environment["DURABLE_FAILOVER_FAULTS"] ?? "") ?? 3
            let report = try await FailoverRun.run(faults: faults)
            print(report.summary)
            #expect(report.lost == 0, "\(report.summary)")
            #expect(report.overCounted == 0, "\(report.summary)")
            #expect(report.faults == faults)
            #expect(report.failoverTimes.count == report.primaryFaults)
            #expect(report.aloneTransitionsLogged > 0 || report.standbyFaults == 0, "\(report.summary)")
            #expect(report.fencedExits == report.pauseFaults, "\(report.summary)")
            #expect(report.staleAcknowledged == 0 && report.staleRefused == report.pauseFaults, "\(report.summary)")
        }
    }
}

/// One fault run: an etcd, a gateway, node a (primary) and node b (its standby), counters incremented by two
/// clients while faults come one after the other, each followed by the faulty process starting again and the pair
/// getting in step again.
enum FailoverRun {
    enum Fault: CaseIterable {
        case killPrimaryAndDeleteData
        case pausePrimaryPastLease
        case killStandby
    }

    struct Report {
        var faults = 0
        var primaryFaults = 0
        var pauseFaults = 0
        var standbyFaults = 0
        var failoverTimes: [Duration] = []
        var acknowledged = 0
        var unknown = 0
        var lost = 0
        var overCounted = 0
        var aloneTransitionsLogged = 0
        var fencedExits = 0
        var staleAcknowledged = 0
        var staleRefused = 0
        var seconds: Double = 0

        var summary: String {
            let sorted = failoverTimes.sorted()
            func percentile(_ p: Double) -> String {
                guard !sorted.isEmpty else { return "-" }
                let index = min(sorted.count - 1, Int((Double(sorted.count) * p).rounded(.up)) - 1)
                return String(
                    format: "%.2f s",
                    Double(sorted[max(0, index)].components.attoseconds) / 1e18
                        + Double(sorted[max(0, index)].components.seconds))
            }
            return """
                failover run: \(faults) faults (\(primaryFaults - pauseFaults) primary killed with its data deleted, \
                \(pauseFaults) primary paused past its lease, \(standbyFaults) standby killed) in \
                \(String(format: "%.0f", seconds)) s
                  increments acknowledged \(acknowledged), outcome unknown \(unknown); lost \(lost), counted beyond \
                acknowledged+unknown \(overCounted)
                  failover (fault to first successful call begun after it), \(failoverTimes.count) failovers: p50 \
                \(percentile(0.5)), p99 \(percentile(0.99)), max \(percentile(1.0))
                  paused primaries that stopped as replaced: \(fencedExits); increments sent to a woken replaced \
                primary at its old epoch: \(staleRefused) refused, \(staleAcknowledged) acknowledged
                  "running without standby" logged \(aloneTransitionsLogged) times
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

    static func run(faults: Int) async throws -> Report {
        let began = ContinuousClock.now
        let folder = TemporaryDirectory("failover")
        let etcd = try await EtcdProcess.start(dataDirectory: folder.child("etcd"))
        let etcdClient = try EtcdClient(endpoints: [etcd.clientURL], logger: Logger(label: "test.etcd"))
        var processes: [String: ServerProcess] = [:]
        var gateway: ServerProcess?
        var report = Report()
        do {
            let common = ["--etcd", etcd.clientURL, "--lease-ttl", "3"]
            gateway = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"), arguments: common + ["--log-level", "info"])
            func startNode(_ id: String, standbyFor: String?) async throws -> ServerProcess {
                try await ServerProcess.node(
                    dataDirectory: folder.child(id),
                    arguments: ["--node-id", id, "--log-level", "info"] + common
                        + (standbyFor.map { ["--standby-for", $0] } ?? []))
            }
            processes["a"] = try await startNode("a", standbyFor: nil)
            processes["b"] = try await startNode("b", standbyFor: "a")
            let client = DurableClient(
                host: "127.0.0.1", port: gateway!.port, defaultTimeout: .seconds(10), credentials: TestKeys.api)
            let load = Load(count: 16)
            // One increment each first, so that every counter's slot is placed on the primary.
            let namespace = try await client.namespace("COUNTER")
            for (index, name) in load.names.enumerated() {
                _ = try await namespace.getByName(name).fetch("http://c/increment")
                load.tally.withLock { $0.acknowledged[index] += 1 }
            }

            func role(of node: String) async throws -> String {
                String(
                    decoding: try await etcdClient.get(Array("/durable/default/terms/\(node)".utf8))?.value ?? [],
                    as: UTF8.self)
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
                try await role(of: "a").hasPrefix("primary") ? "a" : "b"
            }
            func inStep(primary: String, standby: String) async -> Bool {
                guard
                    let value = try? await etcdClient.get(Array("/durable/default/replication/\(primary)".utf8))?.value,
                    let object = try? JSONSerialization.jsonObject(with: Data(value)) as? [String: Any]
                else { return false }
                let isPrimary = (try? await role(of: primary))?.hasPrefix("primary") == true
                return object["inStep"] as? Bool == true && object["standby"] as? String == standby && isPrimary
            }
            #expect(await eventually(timeout: .seconds(60)) { await inStep(primary: "a", standby: "b") })

            let prober = DurableClient(
                host: "127.0.0.1", port: gateway!.port, defaultTimeout: .milliseconds(500), credentials: TestKeys.api)
            var loaders = (0..<2).map { offset in Task { await load.run(client: client, offset: offset * 8) } }
            loaders.append(Task { await load.run(client: prober, offset: 4, pause: .milliseconds(100)) })
            for number in 0..<faults {
                let fault = Fault.allCases[number % Fault.allCases.count]
                let primaryNode = try await primary()
                let standbyNode = primaryNode == "a" ? "b" : "a"
                // Some load first, so that the fault lands on writes in flight.
                try await Task.sleep(for: .milliseconds(300))
                let faultAt = ContinuousClock.now
                switch fault {
                case .killPrimaryAndDeleteData, .pausePrimaryPastLease:
                    report.primaryFaults += 1
                    let victim = processes[primaryNode]!
                    let oracleID = namespace.getByName(load.names[0]).id
                    let epochBefore = try await slotEpoch(PlacementEpochs.slot(of: oracleID))
                    if fault == .killPrimaryAndDeleteData {
                        await victim.crash()
                        try FileManager.default.removeItem(atPath: folder.child(primaryNode))
                    } else {
                        report.pauseFaults += 1
                        victim.child.send(SIGSTOP)
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
                        for (name, process) in processes {
                            print("--- \(name):\n\(process.child.errorText.suffix(12000))")
                        }
                        print("--- gateway:\n\(gateway!.child.errorText.suffix(3000))")
                        if let keys = try? await etcdClient.get(prefix: Array("/durable/default/".utf8)) {
                            for value in keys.values
                            where !String(decoding: value.key, as: UTF8.self).contains("registry") {
                                print(
                                    "etcd \(String(decoding: value.key, as: UTF8.self)) = \(String(decoding: value.value.prefix(200), as: UTF8.self)) lease \(value.lease)"
                                )
                            }
                        }
                        print("--- load: \(load.tally.withLock { ($0.acknowledged, $0.unknown, $0.lastErrors) })")
                    }
                    if fault == .pausePrimaryPastLease {
                        // The fencing oracle: the paused primary, woken, is sent an increment directly, at the epoch
                        // it served the slot at; it must not acknowledge it (its term is over).
                        let direct = DurableClient(
                            host: "127.0.0.1", port: victim.port, defaultTimeout: .seconds(5),
                            credentials: TestKeys.cluster)
                        let probe = Task {
                            try await direct.invoke(
                                namespaceID: namespace.namespaceID, id: oracleID,
                                request: Request(url: "http://c/increment"), timeout: .seconds(5),
                                epoch: epochBefore)
                        }
                        victim.child.send(SIGCONT)
                        if case .success = await probe.result {
                            report.staleAcknowledged += 1
                            load.tally.withLock { $0.unknown[0] += 1 }
                        } else {
                            report.staleRefused += 1
                        }
                        await direct.close()
                        // The old primary finds its term over and stops, saying so.
                        let outcome = try await victim.child.outcome(within: .seconds(60))
                        if outcome.status != 0 && outcome.errors.contains("was replaced by its standby") {
                            report.fencedExits += 1
                        } else {
                            Issue.record("fault \(number + 1): the paused primary did not stop as replaced: \(outcome)")
                        }
                    }
                    // It comes back as the new primary's standby.
                    report.aloneTransitionsLogged += aloneLines(victim)
                    processes[primaryNode] = try await startNode(primaryNode, standbyFor: nil)
                    #expect(
                        await eventually(timeout: .seconds(60)) {
                            await inStep(primary: standbyNode, standby: primaryNode)
                        },
                        "fault \(number + 1): \(primaryNode) did not get in step as \(standbyNode)'s standby")
                case .killStandby:
                    report.standbyFaults += 1
                    await processes[standbyNode]!.crash()
                    report.aloneTransitionsLogged += aloneLines(processes[standbyNode]!)
                    // Writes go on once the primary recorded that it runs alone.
                    #expect(
                        await eventually(timeout: .seconds(30)) {
                            load.firstSuccess(startedAfter: faultAt + .milliseconds(1500)) != nil
                        }, "fault \(number + 1): writes did not go on without the standby")
                    processes[standbyNode] = try await startNode(standbyNode, standbyFor: primaryNode)
                    #expect(
                        await eventually(timeout: .seconds(60)) {
                            await inStep(primary: primaryNode, standby: standbyNode)
                        },
                        "fault \(number + 1): the standby did not get in step again")
                }
                report.faults += 1
                print("fault \(number + 1)/\(faults): \(fault) done")
            }
            for loader in loaders { loader.cancel() }
            for loader in loaders { await loader.value }

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
            for process in processes.values { report.aloneTransitionsLogged += aloneLines(process) }
            await client.close()
            await prober.close()
        } catch {
            for process in processes.values { _ = await process.stop() }
            if let gateway { _ = await gateway.stop() }
            await etcdClient.close()
            try? await etcd.stop()
            throw error
        }
        for process in processes.values { _ = await process.stop() }
        if let gateway { _ = await gateway.stop() }
        await etcdClient.close()
        try? await etcd.stop()
        report.seconds = Double((ContinuousClock.now - began).components.seconds)
        return report
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
