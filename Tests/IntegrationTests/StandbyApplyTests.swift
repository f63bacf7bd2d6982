import DurableClient
import DurableObjects
import DurableStorage
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// A standby node (`durable node --standby-for PRIMARY`) applying a primary's write groups, sent by hand: in
    /// order, synced with its position, refusing older terms, gaps and other primaries, skipping groups it has.
    @Suite("A standby applies its primary's write groups (real processes)")
    struct StandbyApplyTests {
        static func group(term: UInt64, sequence: UInt64, _ writes: [Durable_V1_ReplicatedWrite])
            -> Durable_V1_ReplicatedGroup
        {
            .with {
                $0.term = term
                $0.sequence = sequence
                $0.writes = writes
            }
        }

        static func put(_ family: String, _ key: String, _ value: String) -> Durable_V1_ReplicatedWrite {
            .with {
                $0.kind = .put
                $0.family = family
                $0.key = Data(key.utf8)
                $0.value = Data(value.utf8)
            }
        }

        static func apply(
            _ client: DurableClient, primary: String = "primary1", _ groups: [Durable_V1_ReplicatedGroup]
        ) async throws -> Durable_V1_StandbyPosition {
            try await client.call(
                Methods.nodeApplyGroups,
                Durable_V1_ApplyGroupsRequest.with {
                    $0.primaryNodeID = primary
                    $0.groups = groups
                })
        }

        @Test("groups apply in order and survive a restart; older terms, gaps and other primaries are refused")
        func applyInOrder() async throws {
            let folder = TemporaryDirectory("standby")
            let data = folder.child("standby")
            var standby = try await ServerProcess.node(
                dataDirectory: data,
                arguments: ["--node-id", "standby1", "--standby-for", "primary1", "--primary", "127.0.0.1:9"])
            var client = DurableClient(host: "127.0.0.1", port: standby.port, credentials: TestKeys.cluster)
            let family = "ns:app.Counter.1"

            let first = try await Self.apply(
                client,
                [
                    Self.group(term: 1, sequence: 1, [Self.put(family, "a", "1"), Self.put(family, "b", "1")]),
                    Self.group(
                        term: 1, sequence: 2,
                        [
                            Self.put(family, "a", "2"),
                            .with {
                                $0.kind = .delete
                                $0.family = family
                                $0.key = Data("b".utf8)
                            },
                        ]),
                ])
            #expect(first.term == 1 && first.sequence == 2 && first.primaryNodeID == "primary1")
            // Group 2 again (its reply was lost, say) is skipped; group 3 applies.
            let again = try await Self.apply(
                client,
                [
                    Self.group(term: 1, sequence: 2, [Self.put(family, "a", "stale")]),
                    Self.group(term: 1, sequence: 3, [Self.put(family, "c", "3")]),
                ])
            #expect(again.sequence == 3)

            let gap = await #expect(throws: DurableObjectError.self) {
                _ = try await Self.apply(client, [Self.group(term: 1, sequence: 5, [Self.put(family, "x", "x")])])
            }
            #expect(gap?.code == .outOfRange)
            #expect(gap?.message.contains("Group 5 does not follow group 3") == true, "\(String(describing: gap))")
            let other = await #expect(throws: DurableObjectError.self) {
                _ = try await Self.apply(client, primary: "primary2", [Self.group(term: 1, sequence: 4, [])])
            }
            #expect(other?.message == "This node is the standby of 'primary1', not of 'primary2'.")
            // A new term continues the sequence; after it, the old term is refused.
            let newTerm = try await Self.apply(
                client, [Self.group(term: 2, sequence: 4, [Self.put(family, "d", "4")])])
            #expect(newTerm.term == 2 && newTerm.sequence == 4)
            let older = await #expect(throws: DurableObjectError.self) {
                _ = try await Self.apply(client, [Self.group(term: 1, sequence: 5, [Self.put(family, "e", "5")])])
            }
            #expect(older?.code == .failedPrecondition)
            #expect(older?.message.contains("older than this standby's term 2") == true)

            // A primary keeps several requests in flight: one handled before the request it follows waits for it
            // (rather than being refused as a gap), and both apply in order.
            let later = Task {
                try await Self.apply(client, [Self.group(term: 2, sequence: 6, [Self.put(family, "g", "6")])])
            }
            #expect(
                await eventually(timeout: .seconds(10)) {
                    // Answered once the later request was read (the calls share the connection); it still waits.
                    let status: Durable_V1_StandbyPosition? = try? await client.call(
                        Methods.nodeStandbyStatus, Durable_V1_StandbyStatusRequest())
                    return status?.sequence == 4
                })
            let earlier = try await Self.apply(
                client, [Self.group(term: 2, sequence: 5, [Self.put(family, "f", "5")])])
            #expect(earlier.sequence >= 5)
            #expect(try await later.value.sequence == 6)

            // The position and the data survive a restart (each request was one synced write).
            await client.close()
            #expect(await standby.stop() == 0)
            standby = try await ServerProcess.node(
                dataDirectory: data,
                arguments: ["--node-id", "standby1", "--standby-for", "primary1", "--primary", "127.0.0.1:9"])
            client = DurableClient(host: "127.0.0.1", port: standby.port, credentials: TestKeys.cluster)
            let status: Durable_V1_StandbyPosition = try await client.call(
                Methods.nodeStandbyStatus, Durable_V1_StandbyStatusRequest())
            #expect(status.term == 2 && status.sequence == 6)
            await client.close()
            #expect(await standby.stop() == 0)

            let database = try Database(path: data)
            let applied = try database.columnFamily(named: family)
            let values = try ["a", "b", "c", "d", "e", "f", "g"].map { key in
                try database.get(Array(key.utf8), in: applied).map { String(decoding: $0, as: UTF8.self) }
            }
            database.close()
            #expect(values == ["2", nil, "3", "4", nil, "5", "6"], "exactly the applied groups, in order")

            // The same folder cannot follow another primary, and a node that is no standby refuses groups.
            let wrongPrimary = try await ChildProcess.run(
                BuiltExecutable.durable,
                [
                    "node", "--port", "0", "--data", data, "--node-id", "standby1", "--standby-for", "primary2",
                    "--primary", "127.0.0.1:9",
                ],
                environment: TestKeys.environment(included: true))
            #expect(wrongPrimary.status != 0)
            #expect(wrongPrimary.errors.contains("This database follows primary 'primary1', not 'primary2'"))
            let plain = try await ServerProcess.node(
                dataDirectory: folder.child("plain"), arguments: ["--node-id", "plain"])
            let plainClient = DurableClient(host: "127.0.0.1", port: plain.port, credentials: TestKeys.cluster)
            let refused = await #expect(throws: DurableObjectError.self) {
                _ = try await Self.apply(plainClient, [Self.group(term: 1, sequence: 1, [])])
            }
            #expect(refused?.message.contains("Node plain is not a standby") == true)
            await plainClient.close()
            #expect(await plain.stop() == 0)
        }
    }
}
