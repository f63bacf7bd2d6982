import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// The node methods that carry a slot move, between two real node processes, run by hand in the order a gateway
    /// runs them: retire the slot at the old owner, pull it to the new one, give the new one the epoch, delete the
    /// old copy.
    @Suite("A slot's data pulled from one node to another (real processes)")
    struct SlotPullTests {
        func define(_ client: DurableClient, key: NamespaceKey) async throws {
            let _: Durable_V1_DefineNamespacesResponse = try await client.call(
                Methods.defineNamespaces,
                Durable_V1_DefineNamespacesRequest.with { request in
                    request.namespaces = [
                        .with {
                            $0.id = "app.Counter.1"
                            $0.className = "Counter"
                            $0.idKey = Data(key.secret)
                        }
                    ]
                })
        }

        func assign(_ client: DurableClient, slot: UInt16, epoch: UInt64, retired: Bool = false) async throws {
            let _: Durable_V1_AssignSlotsResponse = try await client.call(
                Methods.assignSlots,
                Durable_V1_AssignSlotsRequest.with {
                    $0.assignments = [
                        .with {
                            $0.slot = UInt32(slot)
                            $0.epoch = epoch
                            $0.retired = retired
                        }
                    ]
                })
        }

        func increment(_ client: DurableClient, _ id: DurableObjectId, epoch: UInt64) async throws -> String {
            try await client.invoke(
                namespaceID: "app.Counter.1", id: id, request: Request(url: "http://c/increment", method: .post),
                timeout: .seconds(10), epoch: epoch
            ).text()
        }

        func pull(_ client: DurableClient, slot: UInt16, epoch: UInt64, from source: String) async throws
            -> Durable_V1_SlotExportSummary
        {
            try await client.call(
                Methods.nodePullSlot,
                Durable_V1_PullSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.epoch = epoch
                    $0.sourceAddress = source
                    $0.sourceNodeID = "source"
                })
        }

        func delete(_ client: DurableClient, slot: UInt16, epoch: UInt64, newOwner: String) async throws {
            let _: Durable_V1_DeleteSlotResponse = try await client.call(
                Methods.nodeDeleteSlot,
                Durable_V1_DeleteSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.epoch = epoch
                    $0.newOwner = newOwner
                })
        }

        @Test("the new owner gets every row with the same checksum, the old owner is fenced and then deletes its copy")
        func pullRetiredSlot() async throws {
            let folder = TemporaryDirectory("slot-pull")
            let source = try await ServerProcess.node(
                dataDirectory: folder.child("source"), arguments: ["--node-id", "source"])
            let target = try await ServerProcess.node(
                dataDirectory: folder.child("target"), arguments: ["--node-id", "target"])
            let atSource = DurableClient(host: "127.0.0.1", port: source.port, credentials: TestKeys.cluster)
            let atTarget = DurableClient(host: "127.0.0.1", port: target.port, credentials: TestKeys.cluster)
            let key = NamespaceKey.random()
            try await define(atSource, key: key)
            try await define(atTarget, key: key)

            // Three counters in one slot, owned by the source at epoch 1.
            let first = key.id(forName: "c-0")
            let slot = PlacementEpochs.slot(of: first)
            let ids =
                [first]
                + (1..<40000).lazy.map { key.id(forName: "c-\($0)") }.filter { PlacementEpochs.slot(of: $0) == slot }
                .prefix(2)
            #expect(ids.count == 3)
            try await assign(atSource, slot: slot, epoch: 1)
            for (index, id) in ids.enumerated() {
                for _ in 0...index { _ = try await increment(atSource, id, epoch: 1) }
            }

            // Exporting needs the slot retired at the move's epoch.
            let early = await #expect(throws: DurableObjectError.self) {
                _ = try await atSource.callStreaming(
                    Methods.nodeExportSlot,
                    payload: try Durable_V1_ExportSlotRequest.with {
                        $0.slot = UInt32(slot)
                        $0.epoch = 2
                    }.serializedBytes()
                ) { _ in }
            }
            #expect(early?.code == .failedPrecondition)

            // The move: retire at epoch 2 (the old epoch is fenced), pull, hand over, delete.
            try await assign(atSource, slot: slot, epoch: 2, retired: true)
            let stale = await #expect(throws: DurableObjectError.self) {
                try await increment(atSource, first, epoch: 1)
            }
            #expect(stale?.retryable == true, "\(String(describing: stale))")
            // Retired, the old owner runs none of the slot's objects, even under the new epoch.
            let retired = await #expect(throws: DurableObjectError.self) {
                try await increment(atSource, first, epoch: 2)
            }
            #expect(retired?.retryable == true && retired?.message.contains("handed to another node") == true)
            let pulled = try await pull(atTarget, slot: slot, epoch: 2, from: "127.0.0.1:\(source.port)")
            #expect(pulled.objects == 3 && pulled.rows >= 3 && pulled.checksum.count == 32, "\(pulled)")
            try await assign(atTarget, slot: slot, epoch: 2)
            for (index, id) in ids.enumerated() {
                #expect(try await increment(atTarget, id, epoch: 2) == "\(index + 2)", "the count moved with it")
            }
            let wrongNode = await #expect(throws: DurableObjectError.self) {
                try await delete(atTarget, slot: slot, epoch: 2, newOwner: "target")
            }
            #expect(wrongNode?.code == .failedPrecondition, "the new owner never deletes the slot")
            try await delete(atSource, slot: slot, epoch: 2, newOwner: "target")
            let usage: Durable_V1_NodeSlotUsageResponse = try await atSource.call(
                Methods.nodeSlotUsage, Durable_V1_NodeSlotUsageRequest())
            #expect(!usage.slots.contains { $0.slot == UInt32(slot) }, "the old copy is gone")
            // A pull for an epoch the node holds already is refused.
            let again = await #expect(throws: DurableObjectError.self) {
                _ = try await pull(atTarget, slot: slot, epoch: 2, from: "127.0.0.1:\(source.port)")
            }
            #expect(again?.code == .failedPrecondition)
            await atSource.close()
            await atTarget.close()
            #expect(await source.stop() == 0)
            #expect(await target.stop() == 0)
        }
    }
}
