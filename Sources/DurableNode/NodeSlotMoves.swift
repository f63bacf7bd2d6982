import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Synchronization

/// A node's part in slot moves: the old owner streams a retired slot's rows (`Node/ExportSlot`) and deletes its copy
/// once the slot moved (`Node/DeleteSlot`); the new owner pulls the rows and checks them against the old owner's
/// summary (`Node/PullSlot`). The gateway runs the move and records the owners.
extension ObjectService {
    /// Rows per streamed batch.
    static let slotBatchRows = 512
    /// Batches of an export that may wait for the network at once.
    static let slotExportWindow = 4

    /// `Node/ExportSlot`: the slot's rows at one snapshot, streamed, then their summary.
    func exportSlot(_ call: IncomingCall) async throws -> [UInt8] {
        let request = try Durable_V1_ExportSlotRequest(serializedBytes: call.payload)
        let slot = UInt16(request.slot % UInt32(PlacementEpochs.slotCount))
        let held = runtime.placement.epoch(ofSlot: slot)
        guard request.epoch > 0, held == request.epoch, runtime.placement.isRetired(slot) else {
            throw RPCError(
                .failedPrecondition,
                "Node \(nodeID) holds slot \(slot) at epoch \(held)"
                    + (runtime.placement.isRetired(slot) ? "" : ", serving it")
                    + ", not retired at \(request.epoch): a slot is exported only once it was retired at the move's epoch."
            )
        }
        // The walk reads RocksDB on a thread of its own; its batches go out as the stream's messages, in order. At
        // most `slotExportWindow` batches wait for the network: the walk blocks (its own thread) until one is sent.
        let (batches, continuation) = AsyncStream.makeStream(of: [SlotRow].self)
        let window = DispatchSemaphore(value: Self.slotExportWindow)
        let stopped = Atomic<Bool>(false)
        let walk = Task { [runtime] in
            defer { continuation.finish() }
            return try await Self.onOwnThread {
                try runtime.exportRows(ofSlot: slot, batchSize: Self.slotBatchRows) { batch in
                    window.wait()
                    if stopped.load(ordering: .acquiring) { throw CancellationError() }
                    continuation.yield(batch)
                }
            }
        }
        do {
            for await batch in batches {
                try await call.stream.send(
                    try Durable_V1_SlotRowBatch.with {
                        $0.rows = batch.map { row in
                            .with {
                                $0.family = row.family
                                $0.key = Data(row.key)
                                $0.value = Data(row.value)
                            }
                        }
                    }.serializedBytes())
                window.signal()
            }
        } catch {
            // The caller went away: the walk stops at its next batch.
            stopped.store(true, ordering: .releasing)
            for _ in 0...Self.slotExportWindow { window.signal() }
            _ = try? await walk.value
            throw error
        }
        let summary = try await walk.value
        logger.info(
            "slot exported",
            metadata: [
                "slot": "\(slot)", "rows": "\(summary.rows)", "objects": "\(summary.objects)", "peer": "\(call.peer)",
            ])
        return try Self.wire(summary).serializedBytes()
    }

    /// `Node/PullSlot`: copies the slot from its old owner, then checks that what this node now holds of the slot
    /// is exactly what the old owner sent (rows, bytes, checksum). A copy that does not match is deleted again.
    func pullSlot(_ request: Durable_V1_PullSlotRequest) async throws -> Durable_V1_SlotExportSummary {
        let slot = UInt16(request.slot % UInt32(PlacementEpochs.slotCount))
        let held = runtime.placement.epoch(ofSlot: slot)
        guard request.epoch > held else {
            throw RPCError(
                .failedPrecondition,
                "Node \(nodeID) holds slot \(slot) at epoch \(held) already; it pulls a slot only for a later epoch "
                    + "than its own (\(request.epoch) asked).")
        }
        guard let colon = request.sourceAddress.lastIndex(of: ":"),
            let port = Int(request.sourceAddress[request.sourceAddress.index(after: colon)...])
        else {
            throw RPCError(
                .invalidArgument, "The old owner's address must be host:port, not '\(request.sourceAddress)'.")
        }
        let host = String(request.sourceAddress[..<colon])
        // A copy left by an earlier move of the slot (to this node, or away from it) goes first: the pull must leave
        // exactly the old owner's rows.
        do {
            try await runtime.deleteRows(ofSlot: slot)
        } catch {
            throw RPCError(serving: error)
        }
        logger.info(
            "pulling slot",
            metadata: ["slot": "\(slot)", "epoch": "\(request.epoch)", "from": "\(request.sourceNodeID)"])
        let connection = try await RPCConnection.connect(
            host: host, port: port, credentials: clusterSecret, tls: peerTLS, logger: logger)
        // Batches are written one after the other, in the order they came, while the stream goes on.
        let (batches, continuation) = AsyncStream.makeStream(of: [UInt8].self)
        let runtime = self.runtime
        let writer = Task {
            var written = 0
            for await bytes in batches {
                let batch = try Durable_V1_SlotRowBatch(serializedBytes: bytes)
                try await runtime.importRows(
                    batch.rows.map { SlotRow(family: $0.family, key: Array($0.key), value: Array($0.value)) })
                written += batch.rows.count
            }
            return written
        }
        let sent: Durable_V1_SlotExportSummary
        do {
            let reply = try await connection.callStreaming(
                Methods.nodeExportSlot,
                payload: try Durable_V1_ExportSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.epoch = request.epoch
                }.serializedBytes(), metadata: [:], timeout: nil
            ) { continuation.yield($0) }
            continuation.finish()
            sent = try Durable_V1_SlotExportSummary(serializedBytes: reply)
            _ = try await writer.value
        } catch {
            continuation.finish()
            _ = try? await writer.value
            await connection.close()
            try? await runtime.deleteRows(ofSlot: slot)
            throw error
        }
        await connection.close()
        let held2 = try await Self.onOwnThread { [runtime] in try runtime.exportRows(ofSlot: slot) { _ in } }
        let copy = Self.wire(held2)
        guard copy == sent else {
            try? await runtime.deleteRows(ofSlot: slot)
            throw RPCError(
                .dataLoss,
                "The copy of slot \(slot) from \(request.sourceNodeID) does not match what it sent "
                    + "(\(copy.rows) rows here, \(sent.rows) sent, or another checksum); the copy was deleted.")
        }
        logger.info(
            "slot pulled", metadata: ["slot": "\(slot)", "rows": "\(copy.rows)", "objects": "\(copy.objects)"])
        return copy
    }

    /// `Node/DeleteSlot`: deletes this node's copy of a slot that moved to `new_owner`, or the copy a failed move
    /// left here (`partial_copy`).
    func deleteSlot(_ request: Durable_V1_DeleteSlotRequest) async throws {
        let slot = UInt16(request.slot % UInt32(PlacementEpochs.slotCount))
        let held = runtime.placement.epoch(ofSlot: slot)
        guard !request.newOwner.isEmpty, request.newOwner != nodeID, request.epoch > 0,
            request.partialCopy || held >= request.epoch
        else {
            throw RPCError(
                .failedPrecondition,
                "Node \(nodeID) keeps slot \(slot) (epoch \(held) here; the request names epoch \(request.epoch) and "
                    + "new owner '\(request.newOwner)'): only the old owner of a slot retired at the move's epoch "
                    + "deletes it.")
        }
        if request.partialCopy, held <= request.epoch {
            // The copy may have been given the move's epoch already: it serves nothing of the slot from now on.
            try await assign([(slot, request.epoch, true)])
        }
        do {
            try await runtime.deleteRows(ofSlot: slot)
        } catch {
            throw RPCError(serving: error)
        }
        logger.info("slot deleted: it moved", metadata: ["slot": "\(slot)", "to": "\(request.newOwner)"])
    }

    /// `Node/AssignSlots`: records the epochs the node takes (one older than the slot's is ignored) on disk, then
    /// in the runtime (which schedules a pulled slot's alarms once the node serves it).
    func assign(_ assignments: [(slot: UInt16, epoch: UInt64, retired: Bool)]) async throws {
        let placement = runtime.placement
        let kept = assignments.filter { $0.epoch >= placement.epoch(ofSlot: $0.slot) }
        try NodeMetadata.saveSlotEpochs(kept, database: database, family: meta)
        await runtime.assignSlots(kept)
    }

    static func wire(_ summary: SlotRowsSummary) -> Durable_V1_SlotExportSummary {
        .with {
            $0.rows = UInt64(summary.rows)
            $0.bytes = UInt64(summary.bytes)
            $0.objects = UInt64(summary.objects)
            $0.checksum = Data(summary.checksum)
        }
    }
}
