import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// Objects on separate node processes: the example chat's rooms call their client's rate limiter wherever it
    /// lives, and hold WebSockets that the gateway relays.
    @Suite("Object-to-object calls and WebSockets between node processes")
    struct CrossNodeTests {
        /// How many objects each node of the cluster has live.
        func activeObjects(_ cluster: TestCluster) async throws -> [UInt64] {
            var counts: [UInt64] = []
            for node in cluster.nodes {
                let client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
                counts.append(try await client.stats().activeObjects)
                await client.close()
            }
            return counts
        }

        @Test("chat rooms on both nodes call one rate limiter across processes and relay every message to every socket")
        func chatAcrossNodes() async throws {
            try await withTestCluster(nodes: 2, label: "cross-node") { cluster in
                let http = try #require(try cluster.gateway.httpPort)
                // Each new slot goes to the node with the fewest, so four rooms land on both nodes.
                let rooms = (1...4).map { "room-\($0)-\(UUID().uuidString.prefix(8))" }
                var sockets: [(alice: TestWebSocket, bob: TestWebSocket)] = []
                for room in rooms {
                    let (alice, _) = await joinChat(httpPort: http, room: room, as: "alice")
                    let (bob, _) = await joinChat(httpPort: http, room: room, as: "bob")
                    #expect(await nextEvent(alice) == "joined bob")
                    sockets.append((alice, bob))
                }
                #expect(try await activeObjects(cluster).allSatisfy { $0 > 0 }, "rooms live on both nodes")

                // Every post asks the one rate limiter of 127.0.0.1 (on one of the nodes) before it is broadcast.
                for (index, pair) in sockets.enumerated() {
                    pair.alice.send(#"{"message": "hello \#(index)"}"#)
                    #expect(await nextChat(pair.bob) == "alice: hello \(index)")
                    #expect(await nextChat(pair.alice) == "alice: hello \(index)")
                }
                #expect(
                    try await activeObjects(cluster).reduce(0, +) == UInt64(rooms.count + 1), "rooms and one limiter")

                // A socket closed by its client reaches its room, across the gateway.
                for pair in sockets {
                    pair.bob.close()
                    _ = try await pair.bob.closed()
                    #expect(await nextEvent(pair.alice) == "quit bob")
                    pair.alice.close()
                }
            }
        }
    }
}
