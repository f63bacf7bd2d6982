import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// With several gateways on etcd, a move whose gateway dies is undone by another gateway once the dead one's
    /// lease ends: the slot's record names the moving gateway's session.
    @Suite("Slot moves on etcd (real processes)")
    struct SlotMoveOnEtcdTests {
        @Test("a move held by a gateway that is killed is undone by the other gateway; the slot serves its data")
        func moverKilled() async throws {
            let folder = TemporaryDirectory("etcd-move")
            let holds = TemporaryDirectory("etcd-move-holds")
            let etcd = try await EtcdProcess.start(dataDirectory: folder.child("etcd"))
            var processes: [ServerProcess] = []
            do {
                let arguments = ["--etcd", etcd.clientURL, "--lease-ttl", "2"]
                let gatewayA = try await ServerProcess.gateway(
                    dataDirectory: folder.child("gateway-a"), arguments: arguments,
                    environment: ["DURABLE_FAULT_HOLD_SLOT_MOVES": holds.path])
                let gatewayB = try await ServerProcess.gateway(
                    dataDirectory: folder.child("gateway-b"), arguments: arguments)
                processes = [gatewayB]
                for number in 1...2 {
                    processes.append(
                        try await ServerProcess.node(
                            dataDirectory: folder.child("node\(number)"),
                            arguments: ["--node-id", "node\(number)"] + arguments))
                }
                let viaB = "127.0.0.1:\(gatewayB.port)"
                let client = DurableClient(
                    host: "127.0.0.1", port: gatewayB.port, defaultTimeout: .seconds(10), credentials: TestKeys.api)
                let counter = try await client.namespace("COUNTER").getByName("held")
                for _ in 0..<3 { _ = try await counter.fetch("http://c/increment") }
                let slot = PlacementEpochs.slot(of: counter.id)
                let before = try #require(try await SlotMoveKillTests.record(of: slot, gateway: viaB))
                let target = before.node == "node1" ? "node2" : "node1"

                // The move, through gateway A, stops after the new owner pulled the slot.
                #expect(FileManager.default.createFile(atPath: holds.child("hold-pulled"), contents: nil))
                let move = Task {
                    try await ChildProcess.run(
                        BuiltExecutable.durable,
                        ["slots", "move", "\(slot)", "--to", target, "--gateway", "127.0.0.1:\(gatewayA.port)"],
                        environment: TestKeys.environment(included: true))
                }
                #expect(
                    await eventually(timeout: .seconds(60)) {
                        FileManager.default.fileExists(atPath: holds.child("held-pulled"))
                    })
                let refused = await #expect(throws: DurableObjectError.self) { try await counter.fetch("http://c/") }
                #expect(refused?.retryable == true && refused?.message.contains("is moving to node \(target)") == true)
                #expect(try await SlotMoveKillTests.record(of: slot, gateway: viaB)?.movingTo == target)

                await gatewayA.crash()
                #expect(try await move.value.status != 0)
                // Gateway B undoes it once A's lease (2 s) ended: back with the old owner, which serves it.
                #expect(
                    try await eventually(timeout: .seconds(60)) {
                        try await SlotMoveKillTests.record(of: slot, gateway: viaB)?.movingTo.isEmpty == true
                    })
                let after = try #require(try await SlotMoveKillTests.record(of: slot, gateway: viaB))
                #expect(after.node == before.node && after.epoch == before.epoch + 1, "\(after)")
                #expect(try await counter.fetch("http://c/").text() == "3")
                #expect(try await counter.fetch("http://c/increment").text() == "4")
                try? FileManager.default.removeItem(atPath: holds.child("hold-pulled"))
                await client.close()
            } catch {
                for process in processes { _ = await process.stop() }
                try? await etcd.stop()
                throw error
            }
            for process in processes { _ = await process.stop() }
            try? await etcd.stop()
        }
    }
}
