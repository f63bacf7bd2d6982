import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Logging
import Synchronization

/// Moves a slot, with its data, from its owner to another node, online:
///
/// 1. the placement store records the slot as moving at a new epoch (calls to it are told to retry);
/// 2. the old owner is given the new epoch: its objects of the slot are retired and their writes fenced;
/// 3. the new owner pulls the slot's rows from the old one and checks them (``ObjectService`` on the nodes);
/// 4. the new owner is given the epoch, then the store records it as the owner (one compare-and-set);
/// 5. the old owner deletes its copy.
///
/// A failure before step 4's record puts the slot back with its old owner (which holds the new epoch, so it serves
/// the slot again) and deletes a partial copy; the slot never has two owners in the store, and only the recorded
/// owner holds an epoch calls are routed with. A move that never ended (its gateway stopped midway) leaves the slot
/// marked moving: the next move of that slot undoes it first.
final class SlotMover: Sendable {
    private let placement: any PlacementStore
    private let links: NodeLinks
    private let logger: Logger
    /// Slots with a move running through this gateway.
    private let running = Mutex<Set<UInt16>>([])

    /// How long the new owner may take to pull a slot.
    static let pullTimeout: Duration = .seconds(600)

    init(placement: any PlacementStore, links: NodeLinks, logger: Logger) {
        self.placement = placement
        self.links = links
        self.logger = logger
    }

    /// `Admin/MoveSlot`.
    func move(_ request: Durable_V1_MoveSlotRequest) async throws -> Durable_V1_MoveSlotResponse {
        guard request.slot < UInt32(PlacementEpochs.slotCount) else {
            throw RPCError(.invalidArgument, "There is no slot \(request.slot): slots are 0 to 4095.")
        }
        let slot = UInt16(request.slot)
        let target = request.toNode
        guard placement.nodes[target] != nil else {
            throw RPCError(.notFound, "No node '\(target)' is registered.")
        }
        guard running.withLock({ $0.insert(slot).inserted }) else {
            throw RPCError(.failedPrecondition, "Slot \(slot) is being moved through this gateway already.")
        }
        defer { _ = running.withLock { $0.remove(slot) } }
        guard var current = placement.assignment(of: slot) else {
            throw RPCError(.failedPrecondition, "Slot \(slot) has no owner yet: it gets one on its first call.")
        }
        if current.movingTo != nil {
            // A move that did not end (its gateway stopped midway, or another gateway runs it now: its last
            // compare-and-set then fails and it stops): put the slot back with its old owner first.
            current = try await rollBack(slot, current)
        }
        guard current.nodeID != target else {
            throw RPCError(.failedPrecondition, "Slot \(slot) is on node \(target) already.")
        }
        let source = current.nodeID
        let epoch = current.epoch + 1
        let moving = SlotAssignment(nodeID: source, epoch: epoch, movingTo: target)
        guard try await placement.replace(slot, expected: current, with: moving) else {
            throw RPCError(.aborted, "Slot \(slot) changed while the move began; try again.", retryable: true)
        }
        let started = ContinuousClock.now
        logger.info("moving slot", metadata: ["slot": "\(slot)", "from": "\(source)", "to": "\(target)"])
        var pulled = Durable_V1_SlotExportSummary()
        do {
            try await assign(slot, epoch, at: source, retired: true)
            pulled = try await links.node(target).call(
                Methods.nodePullSlot,
                Durable_V1_PullSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.epoch = epoch
                    $0.sourceAddress = placement.nodes[source] ?? ""
                    $0.sourceNodeID = source
                }, timeout: Self.pullTimeout)
            try await assign(slot, epoch, at: target)
            let owner = SlotAssignment(nodeID: target, epoch: epoch)
            guard try await placement.replace(slot, expected: moving, with: owner) else {
                throw RPCError(.aborted, "Slot \(slot)'s record changed during its move.")
            }
        } catch {
            logger.error(
                "slot move failed; the slot stays with its old owner",
                metadata: ["slot": "\(slot)", "from": "\(source)", "to": "\(target)", "error": "\(error)"])
            if (try? await rollBack(slot, moving)) == nil {
                logger.critical(
                    "could not put a slot back with its old owner; it stays marked moving until the next move of it",
                    metadata: ["slot": "\(slot)"])
            }
            throw error as? RPCError ?? RPCError(.unavailable, "The move of slot \(slot) failed: \(error)")
        }
        let unavailable = ContinuousClock.now - started
        do {
            let _: Durable_V1_DeleteSlotResponse = try await links.node(source).call(
                Methods.nodeDeleteSlot,
                Durable_V1_DeleteSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.epoch = epoch
                    $0.newOwner = target
                })
        } catch {
            logger.warning(
                "the old owner kept its copy of a moved slot (it serves it no more)",
                metadata: ["slot": "\(slot)", "node": "\(source)", "error": "\(error)"])
        }
        logger.info(
            "slot moved",
            metadata: [
                "slot": "\(slot)", "from": "\(source)", "to": "\(target)", "rows": "\(pulled.rows)",
                "unavailable": "\(unavailable)",
            ])
        return .with {
            $0.fromNode = source
            $0.toNode = target
            $0.epoch = epoch
            $0.rows = pulled.rows
            $0.bytes = pulled.bytes
            $0.objects = pulled.objects
            $0.unavailableMicros = UInt64(unavailable / .microseconds(1))
        }
    }

    /// Puts a slot marked moving back with its old owner (which holds the move's epoch, so it serves the slot again)
    /// and has the target delete whatever copy it made; returns the slot's record after it.
    private func rollBack(_ slot: UInt16, _ moving: SlotAssignment) async throws -> SlotAssignment {
        guard let target = moving.movingTo else { return moving }
        let back = SlotAssignment(nodeID: moving.nodeID, epoch: moving.epoch)
        guard try await placement.replace(slot, expected: moving, with: back) else {
            throw RPCError(
                .aborted, "Slot \(slot)'s record changed while its unfinished move was undone; try again.",
                retryable: true)
        }
        logger.warning(
            "an unfinished move of a slot was undone: the slot is back with its old owner",
            metadata: ["slot": "\(slot)", "owner": "\(moving.nodeID)", "was-moving-to": "\(target)"])
        // The old owner may not have been given the move's epoch yet; it serves the slot again at it.
        try? await assign(slot, moving.epoch, at: moving.nodeID, retired: false)
        do {
            let _: Durable_V1_DeleteSlotResponse = try await links.node(target).call(
                Methods.nodeDeleteSlot,
                Durable_V1_DeleteSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.epoch = moving.epoch
                    $0.newOwner = moving.nodeID
                    $0.partialCopy = true
                })
        } catch {
            logger.warning(
                "the target of an undone move kept its partial copy (it does not serve the slot)",
                metadata: ["slot": "\(slot)", "node": "\(target)", "error": "\(error)"])
        }
        return back
    }

    private func assign(_ slot: UInt16, _ epoch: UInt64, at nodeID: String, retired: Bool = false) async throws {
        let _: Durable_V1_AssignSlotsResponse = try await links.node(nodeID).call(
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
}
