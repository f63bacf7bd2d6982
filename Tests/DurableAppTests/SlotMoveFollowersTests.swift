import DurableClient
import DurableGateway
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

/// What follows an object when its slot moves: its WebSockets close with 1012 (the clients reconnect and reach the
/// new owner), and the old owner serves the slot no more.
@Suite("What follows a moved object", .timeLimit(.minutes(2)))
struct SlotMoveFollowersTests {
    @Test("a moved object's WebSockets close with 1012; a new socket reaches it on the new owner")
    func socketsCloseWith1012() async throws {
        try await withLocalCluster(app: probeApp, nodes: 2, configuration: probeApp.configuration) { cluster in
            let first = await cluster.openProbeSocket("mover")
            let second = await cluster.openProbeSocket("mover")
            #expect(try await cluster.probe("mover", "/sockets") == "2")
            let id = try cluster.namespace(script: "probes", className: "SocketProbe").idFromName("mover")
            let slot = PlacementEpochs.slot(of: id)
            let owner = try #require(cluster.gateway.placement.assignment(of: slot))
            let other = owner.nodeID == "node-1" ? "node-2" : "node-1"

            let moved: Durable_V1_MoveSlotResponse = try await cluster.client.call(
                Methods.adminMoveSlot,
                Durable_V1_MoveSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.toNode = other
                })
            #expect(moved.toNode == other)
            for socket in [first, second] {
                let frame = try await socket.closed()
                #expect(frame?.closeCode == .unknown(1012), "1012: service restart")
                #expect(frame?.reason == ObjectRuntime.movedCloseReason)
            }
            // The closed sockets did not move with the slot; a new one reaches the object on its new owner.
            #expect(try await cluster.probe("mover", "/sockets") == "0")
            let again = await cluster.openProbeSocket("mover")
            #expect(try await cluster.probe("mover", "/sockets") == "1")
            #expect(cluster.gateway.placement.assignment(of: slot)?.nodeID == other)
            again.close()
        }
    }
}
