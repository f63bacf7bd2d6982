import DurableClient
import DurableExamples
import DurableGateway
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

/// A slot whose move never ended (its gateway stopped midway) stays marked moving: calls to it are told to retry,
/// and the next move of the slot undoes the unfinished one first.
@Suite("Unfinished slot moves")
struct SlotMoveRepairTests {
    @Test("calls to a slot left moving are refused retryably; the next move puts it back, then moves it")
    func unfinishedMoveIsUndone() async throws {
        // The gateway's own check for abandoned moves is kept away (an hour), so that the move is undone by the next
        // move of the slot, as this test checks.
        try await withLocalCluster(
            app: ExampleApp.application, nodes: 2, configuration: ExampleApp.configuration,
            moveRepairInterval: .seconds(3600)
        ) { cluster in
            // What a gateway that stopped between the first and the last step of a move leaves behind.
            let (stub, slot, owner, other) = try await leaveMoving("stuck", increments: 3, mover: nil, in: cluster)
            let placement = cluster.gateway.placement
            let refused = await #expect(throws: DurableObjectError.self) { try await stub.fetch("http://c/") }
            #expect(refused?.retryable == true && refused?.message.contains("is moving to node \(other)") == true)

            let moved: Durable_V1_MoveSlotResponse = try await cluster.client.call(
                Methods.adminMoveSlot,
                Durable_V1_MoveSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.toNode = other
                })
            #expect(moved.fromNode == owner.nodeID && moved.toNode == other)
            #expect(moved.epoch == owner.epoch + 2, "undone at the stuck move's epoch, moved at the next")
            #expect(moved.objects == 1)
            #expect(placement.assignment(of: slot) == SlotAssignment(nodeID: other, epoch: owner.epoch + 2))
            #expect(try await stub.fetch("http://c/").text() == "3", "the data moved with the slot")
            #expect(try await stub.fetch("http://c/increment").text() == "4")
        }
    }

    @Test("the gateway undoes a move whose gateway is gone by itself: the slot serves its data at its old owner")
    func abandonedMoveIsUndoneByTheGateway() async throws {
        try await withLocalCluster(
            app: ExampleApp.application, nodes: 2, configuration: ExampleApp.configuration,
            moveRepairInterval: .milliseconds(100)
        ) { cluster in
            // What a gateway that died midway leaves: the record names its session, which is not alive.
            let (stub, slot, owner, _) = try await leaveMoving(
                "abandoned", increments: 2, mover: "a-gateway-that-died", in: cluster)
            let placement = cluster.gateway.placement
            #expect(
                await eventually(timeout: .seconds(30)) {
                    placement.assignment(of: slot) == SlotAssignment(nodeID: owner.nodeID, epoch: owner.epoch + 1)
                })
            #expect(try await stub.fetch("http://c/").text() == "2", "the old owner serves the slot again")
            #expect(try await stub.fetch("http://c/increment").text() == "3")
        }
    }

    /// Increments counter `name` `increments` times, then marks its slot moving to the other node at the next epoch,
    /// as a move that never ended leaves it (`mover`: the session of the gateway that ran it). Returns the counter,
    /// its slot, its record before, and the node it was moving to.
    private func leaveMoving(_ name: String, increments: Int, mover: String?, in cluster: LocalCluster) async throws
        -> (stub: DurableObjectStub, slot: UInt16, owner: SlotAssignment, other: String)
    {
        let stub = try await cluster.client.namespace("COUNTER").getByName(name)
        for _ in 0..<increments { _ = try await stub.fetch("http://c/increment") }
        let slot = PlacementEpochs.slot(of: stub.id)
        let placement = cluster.gateway.placement
        let owner = try #require(placement.assignment(of: slot))
        let other = owner.nodeID == "node-1" ? "node-2" : "node-1"
        let moving = SlotAssignment(nodeID: owner.nodeID, epoch: owner.epoch + 1, movingTo: other, mover: mover)
        #expect(try await placement.replace(slot, expected: owner, with: moving))
        return (stub, slot, owner, other)
    }
}
