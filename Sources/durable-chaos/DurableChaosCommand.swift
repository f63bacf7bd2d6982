import ArgumentParser
import DurableChaos
import DurableClient
import DurableObjects
import Foundation
import Synchronization

/// A fault the harness injects.
enum Fault: String, ExpressibleByArgument, CaseIterable, Codable {
    /// SIGKILL a random node, then start it again on the same port.
    case killNode = "kill-node"
    /// SIGKILL the gateway, then start it again on the same ports.
    case killGateway = "kill-gateway"
    /// SIGSTOP a random node for a while, then SIGCONT: calls to it time out meanwhile.
    case pauseNode = "pause-node"
}

/// `durable-chaos`: drives a real gateway and nodes with register operations, counter increments and log appends
/// from concurrent clients, while killing and pausing processes; then checks that no acknowledged write was
/// lost, nothing appeared that was not sent, every batch is whole, and each register's history is linearizable.
@main
struct DurableChaosCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "durable-chaos",
        abstract: "Kill and pause gateway and nodes under load; check durability and linearizability afterwards.")

    @Option(help: "Rounds: each runs the load and injects one fault.")
    var rounds = 3

    @Option(help: "Seconds of load per round.")
    var roundSeconds = 4.0

    @Option(help: "Storage nodes behind the gateway.")
    var nodes = 3

    @Option(help: "Concurrent clients.")
    var clients = 8

    @Option(help: "Register objects per round (each round uses fresh ones, read again at the end).")
    var registers = 3

    @Option(help: "Counter objects (kept across rounds).")
    var counters = 4

    @Option(help: "Log objects (kept across rounds).")
    var logs = 3

    @Option(help: "The faults, comma-separated, taking turns round by round: kill-node, kill-gateway, pause-node.")
    var faults = "kill-node,kill-gateway,pause-node"

    @Option(help: "The durable executable (default: the one beside this one).")
    var durable: String?

    @Option(help: "A folder for the cluster's data and logs (default: a new temporary one, deleted on success).")
    var data: String?

    @Option(help: "Write the summary as JSON to this file.")
    var json: String?

    func validate() throws {
        guard rounds >= 1, roundSeconds >= 1, (1...16).contains(nodes), clients >= 1 else {
            throw ValidationError("--rounds, --clients must be at least 1, --round-seconds at least 1, --nodes 1 to 16")
        }
        guard registers >= 1, counters >= 1, logs >= 1 else {
            throw ValidationError("--registers, --counters and --logs must be at least 1")
        }
        _ = try parsedFaults()
    }

    func parsedFaults() throws -> [Fault] {
        try faults.split(separator: ",").map {
            guard let fault = Fault(rawValue: String($0)) else {
                throw ValidationError(
                    "unknown fault '\($0)'; choose from \(Fault.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            return fault
        }
    }

    func run() async throws {
        let executable =
            durable.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("durable")
        let folder =
            data.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("durable-chaos-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let faultChoices = try parsedFaults()
        let cluster = try ChaosCluster(executable: executable, folder: folder, nodeCount: nodes)
        try await offThread { try cluster.start() }
        report(
            "cluster up: gateway on 127.0.0.1:\(cluster.gateway.port), \(nodes) nodes; data and logs in \(folder.path)")

        let record = ChaosRecord()
        var client = DurableClient(
            host: "127.0.0.1", port: cluster.gateway.port, connections: 4, defaultTimeout: .seconds(2),
            credentials: cluster.apiToken)
        try await waitUntilServed(client)
        let counterNames = (0..<counters).map { "chaos-counter-\($0)" }
        let logNames = (0..<logs).map { "chaos-log-\($0)" }
        var allRegisters: [String] = []
        var events: [RoundSummary] = []
        let sequence = RunControl()

        for round in 1...rounds {
            let registerNames = (0..<registers).map { "chaos-r\(round)-register-\($0)" }
            allRegisters += registerNames
            let registerNamespace = try await client.namespace("REGISTERS")
            let counterNamespace = try await client.namespace("COUNTER")
            let before = record.state.withLock { $0.outcomes }
            let control = RunControl()
            control.sequence.store(sequence.sequence.load(ordering: .relaxed), ordering: .relaxed)
            // The faults take turns, so that a short run still tries each of them.
            let fault = faultChoices[(round - 1) % faultChoices.count]
            let summary = try await withThrowingTaskGroup(of: RoundSummary?.self) { group in
                for id in 0..<clients {
                    let worker = ChaosClient(
                        id: id + 1, registers: registerNamespace, counters: counterNamespace, record: record,
                        registerNames: registerNames, counterNames: counterNames, logNames: logNames)
                    group.addTask {
                        await worker.run(control)
                        return nil
                    }
                }
                group.addTask { [roundSeconds] in
                    let at = Double.random(in: 0.2...0.5) * roundSeconds
                    try await Task.sleep(for: .seconds(at))
                    var summary = try await inject(fault, into: cluster, round: round, at: at)
                    let elapsed = ContinuousClock.now
                    try await Task.sleep(for: .seconds(max(0.5, roundSeconds - at - summary.downSeconds)))
                    control.stop.store(true, ordering: .relaxed)
                    summary.afterSeconds = (ContinuousClock.now - elapsed).seconds
                    return summary
                }
                var summary: RoundSummary?
                for try await result in group { if let result { summary = result } }
                return summary!
            }
            sequence.sequence.store(control.sequence.load(ordering: .relaxed), ordering: .relaxed)
            try await waitUntilServed(client)
            let after = record.state.withLock { $0.outcomes }
            var filled = summary
            for kind in ["ok", "failed", "unknown"] {
                filled.operations[kind] = (after[kind] ?? 0) - (before[kind] ?? 0)
            }
            events.append(filled)
            report(
                "round \(round)/\(rounds): \(filled.fault.rawValue) \(filled.target) at \(format(filled.atSeconds)) s, "
                    + "back after \(format(filled.downSeconds)) s; operations ok \(filled.operations["ok"] ?? 0), "
                    + "failed \(filled.operations["failed"] ?? 0), unknown \(filled.operations["unknown"] ?? 0)")
        }

        // A clean restart of everything, then the final reads.
        await client.close()
        let unclean = try await offThread { cluster.stopGracefully() }
        if !unclean.isEmpty { report("graceful stop failed for: \(unclean.joined(separator: ", "))") }
        try await offThread { try cluster.start() }
        client = DurableClient(
            host: "127.0.0.1", port: cluster.gateway.port, connections: 4, defaultTimeout: .seconds(10),
            credentials: cluster.apiToken)
        try await waitUntilServed(client)
        report("restarted every process gracefully; reading back")
        let registerNamespace = try await client.namespace("REGISTERS")
        let counterNamespace = try await client.namespace("COUNTER")
        var counterValues: [String: Int] = [:]
        for name in counterNames {
            let text = try await counterNamespace.getByName(name).fetch("http://counter/").text()
            counterValues[name] = Int(text) ?? -1
        }
        var storedLogs: [String: StoredLog] = [:]
        for name in logNames {
            let response = try await registerNamespace.getByName(name).fetch("http://register/log")
            storedLogs[name] = try JSONDecoder().decode(StoredLog.self, from: Data(response.text().utf8))
        }
        for name in allRegisters {
            let invoked = record.now
            let text = try await registerNamespace.getByName(name).fetch("http://register/register").text()
            let entry = HistoryEntry(
                key: name, client: 0, operation: .read, invoked: invoked, completed: record.now,
                outcome: .read(text == "unset" ? nil : Int(text)))
            record.state.withLock { $0.registers.append(entry) }
        }
        await client.close()
        _ = try await offThread { cluster.stopGracefully() }

        let state = record.state.withLock { $0 }
        var findings = Findings()
        if !unclean.isEmpty { findings.problem("graceful stop failed: \(unclean.joined(separator: ", "))") }
        Verification.counters(counterValues, record: state, findings: &findings)
        Verification.logs(storedLogs, record: state, findings: &findings)
        let checker = LinearizabilityChecker()
        let reports = checker.report(state.registers)
        var linearizable = 0
        var undecided = 0
        for keyReport in reports {
            switch keyReport.result {
            case .linearizable: linearizable += 1
            case .notLinearizable(let key, let explanation): findings.problem("register \(key): \(explanation)")
            case .undecided(let key, let reason):
                undecided += 1
                findings.problem("register \(key): undecided: \(reason)")
            }
        }
        let acknowledged =
            state.counterAcks.values.map(\.count).reduce(0, +) + state.appendsAcked.values.map(\.count).reduce(0, +)
            + state.registers.filter {
                if case .written = $0.outcome { return true }
                if case .compareAndSet(true) = $0.outcome { return true }
                return false
            }.count
        let summary = RunSummary(
            rounds: events, acknowledgedWrites: acknowledged, registerOperations: state.registers.count,
            unknownRegisterOperations: state.registers.filter { $0.outcome == .unknown }.count,
            registersChecked: reports.count, registersLinearizable: linearizable, registersUndecided: undecided,
            operations: state.outcomes, findings: findings)
        let kills = events.filter { $0.fault != .pauseNode }.count
        report(
            """
            \(rounds) rounds (\(kills) kills, \(rounds - kills) pauses); operations: ok \(state.outcomes["ok"] ?? 0), \
            failed \(state.outcomes["failed"] ?? 0), unknown \(state.outcomes["unknown"] ?? 0)
            acknowledged writes \(acknowledged): lost \(findings.lostAcknowledgedWrites), \
            appeared without being sent \(findings.phantomWrites), partial batches \(findings.partialBatches)
            registers: \(reports.count) histories (\(summary.registerOperations) operations, \
            \(summary.unknownRegisterOperations) with unknown outcome): \(linearizable) linearizable, \
            \(reports.count - linearizable - undecided) not, \(undecided) undecided
            """)
        for problem in findings.problems { report("PROBLEM: \(problem)") }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(summary).write(to: URL(fileURLWithPath: json))
        }
        guard findings.problems.isEmpty else {
            report("data and logs kept in \(folder.path)")
            throw ExitCode(1)
        }
        if data == nil { try? FileManager.default.removeItem(at: folder) }
    }

    /// Injects `fault` and brings the process back; returns what happened.
    private func inject(_ fault: Fault, into cluster: ChaosCluster, round: Int, at: Double) async throws
        -> RoundSummary
    {
        let target: ClusterMember
        switch fault {
        case .killGateway: target = cluster.gateway
        case .killNode, .pauseNode: target = cluster.nodes.randomElement()!
        }
        let started = ContinuousClock.now
        switch fault {
        case .killNode, .killGateway:
            target.kill(SIGKILL)
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
            try await offThread { try target.start() }
        case .pauseNode:
            target.kill(SIGSTOP)
            // Up to 3 s: longer than the clients' 2 s deadline, so some calls time out while queued there.
            try await Task.sleep(for: .milliseconds(Int.random(in: 500...3_000)))
            target.kill(SIGCONT)
        }
        return RoundSummary(
            round: round, fault: fault, target: target.name, atSeconds: at,
            downSeconds: (ContinuousClock.now - started).seconds)
    }

    /// Waits (up to 60 s) until a read through the gateway succeeds.
    private func waitUntilServed(_ client: DurableClient) async throws {
        let deadline = ContinuousClock.now + .seconds(60)
        var lastError: (any Error)?
        while ContinuousClock.now < deadline {
            do {
                _ = try await client.namespace("COUNTER").getByName("chaos-probe").fetch("http://counter/")
                return
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        throw ChaosError("the cluster did not serve within 60 s: \(lastError.map { "\($0)" } ?? "")")
    }
}

/// One round: the fault and what the clients saw meanwhile.
struct RoundSummary: Codable {
    var round: Int
    var fault: Fault
    var target: String
    var atSeconds: Double
    var downSeconds: Double
    var afterSeconds: Double = 0
    var operations: [String: Int] = [:]
}

/// The whole run, as `--json` writes it.
struct RunSummary: Codable {
    var rounds: [RoundSummary]
    var acknowledgedWrites: Int
    var registerOperations: Int
    var unknownRegisterOperations: Int
    var registersChecked: Int
    var registersLinearizable: Int
    var registersUndecided: Int
    var operations: [String: Int]
    var findings: Findings
}

/// Prints a progress line to standard error at once.
func report(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

func format(_ seconds: Double) -> String { String(format: "%.2f", seconds) }

/// Runs blocking work (starting a process and waiting for its line) on a thread of its own.
func offThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

extension Duration {
    /// The duration in seconds.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
