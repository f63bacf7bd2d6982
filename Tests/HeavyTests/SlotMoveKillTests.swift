import DurableChaos
import DurableClient
import DurableObjects
import Foundation
import Synchronization
import TestSupport
import Testing

extension WholeMachineTests {
    /// A slot move interrupted by SIGKILL: the gateway holds the move after one of its steps
    /// (`DURABLE_FAULT_HOLD_SLOT_MOVES`), the test kills the old owner, the new owner or the gateway, starts it again
    /// and lets the move go on. Clients read and write registers of the slot all along.
    @Suite("Slot moves under SIGKILL (real processes)")
    struct SlotMoveKillTests {
        enum Victim: String, CaseIterable { case source, target, gateway }

        static let steps = ["marked", "retired", "pulled", "assigned", "recorded"]

        @Test(
            "SIGKILL of the old owner, the new owner or the gateway after each step of a move: no acknowledged write lost, every history linearizable, one owner"
        )
        func killAtEachStep() async throws {
            let holds = TemporaryDirectory("move-holds")
            try await withTestCluster(
                nodes: 2, label: "move-kills", gatewayEnvironment: ["DURABLE_FAULT_HOLD_SLOT_MOVES": holds.path]
            ) { cluster in
                let gatewayPort = try cluster.gateway.port
                let client = DurableClient(
                    host: "127.0.0.1", port: gatewayPort, defaultTimeout: .seconds(10), credentials: TestKeys.api)
                let registers = try await client.namespace("REGISTERS")
                let slot = PlacementEpochs.slot(of: registers.idFromName("kill-anchor"))
                _ = try await registers.getByName("kill-anchor").fetch(
                    "http://r/register/write?value=1", method: .post)
                var candidates = (0..<1_000_000).lazy.map { "kill-\($0)" }
                    .filter { PlacementEpochs.slot(of: registers.idFromName($0)) == slot }.makeIterator()

                var summary: [String] = []
                var lost: [String] = []
                for step in Self.steps {
                    for victim in Victim.allCases {
                        let names = (0..<3).compactMap { _ in candidates.next() }
                        let scenario = "\(victim.rawValue) killed after '\(step)'"
                        let (outcome, history) = try await Self.run(
                            scenario, step: step, victim: victim, slot: slot, cluster: cluster,
                            gatewayPort: gatewayPort, holds: holds, registers: registers, names: names)
                        summary.append("\(scenario): \(outcome)")
                        let reports = LinearizabilityChecker().report(history)
                        for report in reports {
                            if case .linearizable = report.result { continue }
                            lost.append("\(scenario): \(report)")
                        }
                    }
                }
                print("slot move kills:\n  " + summary.joined(separator: "\n  "))
                #expect(lost.isEmpty, "every history linearizable: \(lost)")
                await client.close()
            }
        }

        /// One scenario; returns how the move ended and the history of the registers `names`.
        static func run(
            _ scenario: String, step: String, victim: Victim, slot: UInt16, cluster: TestCluster, gatewayPort: Int,
            holds: TemporaryDirectory, registers: DurableObjectNamespace, names: [String]
        ) async throws -> (String, [HistoryEntry]) {
            let gateway = "127.0.0.1:\(gatewayPort)"
            let before = try #require(try await record(of: slot, gateway: gateway))
            let source = before.node
            let target = source == "node1" ? "node2" : "node1"
            let holdFile = holds.child("hold-\(step)")
            let heldFile = holds.child("held-\(step)")
            #expect(FileManager.default.createFile(atPath: holdFile, contents: nil))
            let load = RegisterLoad(namespace: registers, clients: 3, names: names)
            let moveOutcome = Mutex("")
            let interruption = try await load.interruption {
                let move = Task {
                    try await ChildProcess.run(
                        BuiltExecutable.durable, ["slots", "move", "\(slot)", "--to", target, "--gateway", gateway],
                        environment: TestKeys.environment(included: true))
                }
                do {
                    guard await eventually(timeout: .seconds(60), { FileManager.default.fileExists(atPath: heldFile) })
                    else {
                        Issue.record("\(scenario): the move never reached the step")
                        return
                    }
                    switch victim {
                    case .source, .target:
                        let number = (victim == .source ? source : target) == "node1" ? 1 : 2
                        try await cluster.crashNode(number)
                        try await cluster.startNode(number)
                    case .gateway:
                        try await cluster.crashGateway()
                        try await cluster.startGateway(rpcPort: gatewayPort)
                    }
                    try? FileManager.default.removeItem(atPath: heldFile)
                    try FileManager.default.removeItem(atPath: holdFile)
                    let ran = try await move.value
                    moveOutcome.withLock {
                        $0 =
                            ran.status == 0
                            ? "moved" : "failed (\(ran.errors.split(separator: "\n").last ?? ""))"
                    }
                } catch {
                    Issue.record("\(scenario): \(error)")
                }
            }
            // The slot settles with one owner: the move ended or was undone (by the gateway, within seconds).
            #expect(
                try await eventually(timeout: .seconds(60)) {
                    try await record(of: slot, gateway: gateway)?.movingTo.isEmpty == true
                }, "\(scenario): the slot stays marked moving")
            let after = try #require(try await record(of: slot, gateway: gateway))
            #expect(
                await eventually(timeout: .seconds(60)) { await load.readAll() },
                "\(scenario): every register answers")
            try await expectOneServingNode(
                slot: slot, owner: after.node, epoch: after.epoch, cluster: cluster, registers: registers,
                name: names[0], scenario: scenario)
            let ended = after.node == target ? "moved to \(target)" : "stayed on \(source) (undone)"
            let history = load.history
            let acknowledged = history.filter { $0.completed != nil && $0.outcome != .failed }.count
            let refused = history.filter { $0.outcome == .failed }.count
            return (
                "\(ended) at epoch \(after.epoch); durable slots move: \(moveOutcome.withLock { $0 }); "
                    + "\(acknowledged) operations acknowledged, \(refused) refused before running, "
                    + "\(interruption.failedAfterRetry) failed twice in a row",
                history
            )
        }

        /// The slot's record, as `durable slots list` shows it (`nil` when the command fails or the slot has none).
        static func record(of slot: UInt16, gateway: String) async throws -> SlotListing.Record? {
            try await SlotListing.read(gateway: gateway)?.slots[slot]
        }

        /// Only the recorded owner runs the slot's objects at its epoch: the other node refuses a call made
        /// directly to it.
        static func expectOneServingNode(
            slot: UInt16, owner: String, epoch: UInt64, cluster: TestCluster, registers: DurableObjectNamespace,
            name: String, scenario: String
        ) async throws {
            for number in [1, 2] {
                let node = try cluster.node(number)
                let direct = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
                let call = {
                    try await direct.invoke(
                        namespaceID: registers.namespaceID, id: registers.idFromName(name),
                        request: Request(url: "http://r/register"), timeout: .seconds(10), epoch: epoch)
                }
                if "node\(number)" == owner {
                    #expect(try await call().status == .ok, "\(scenario): the owner serves the slot")
                } else {
                    let refused = await #expect(throws: DurableObjectError.self, "\(scenario): one owner") {
                        _ = try await call()
                    }
                    #expect(refused?.retryable == true, "\(scenario): \(String(describing: refused))")
                }
                await direct.close()
            }
        }
    }
}
