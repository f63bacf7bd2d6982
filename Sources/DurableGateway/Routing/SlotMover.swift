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
/// owner holds an epoch calls are routed with. A move whose gateway is gone (its session no longer live, or this
/// gateway's own move that is not running) is undone by ``undoAbandonedMoves()``, which the gateway runs at start,
/// when another gateway leaves, and every few seconds; the next move of such a slot undoes it first too.
final class SlotMover: Sendable {
    /// The steps of a move, each done when it is named; a test can hold a move after one (``holdFolder``).
    enum Step: String, CaseIterable, Sendable {
        case marked, retired, pulled, assigned, recorded, deleted
    }

    private let placement: any PlacementStore
    private let links: NodeLinks
    private let logger: Logger
    /// This gateway's session, recorded in the slots it moves.
    private let session: String
    /// The sessions of the gateways alive now (this one's included).
    private let liveSessions: @Sendable () -> Set<String>
    /// Slots with a move running through this gateway.
    private let running = Mutex<Set<UInt16>>([])
    /// Copies a node still has to delete (it could not be reached when told): the old owner's after a move, the
    /// target's partial one after an undone move; by slot and node.
    private let leftoverCopies = Mutex<[String: (node: String, request: Durable_V1_DeleteSlotRequest)]>([:])
    /// Fault injection for tests (`DURABLE_FAULT_HOLD_SLOT_MOVES`): while `<folder>/hold-<step>` exists, a move
    /// stops after that step, having created `<folder>/held-<step>`.
    private let holdFolder: String?

    /// How long the new owner may take to pull a slot.
    static let pullTimeout: Duration = .seconds(600)

    init(
        placement: any PlacementStore, links: NodeLinks, session: String,
        liveSessions: @escaping @Sendable () -> Set<String>, logger: Logger,
        holdFolder: String? = ProcessInfo.processInfo.environment["DURABLE_FAULT_HOLD_SLOT_MOVES"]
    ) {
        self.placement = placement
        self.links = links
        self.session = session
        self.liveSessions = liveSessions
        self.logger = logger
        self.holdFolder = holdFolder
    }

    /// Undoes every move whose gateway is gone: the slot goes back to its old owner (see ``move(_:)``), and the
    /// target deletes its partial copy (retried on later calls while it cannot be reached). Returns the slots put
    /// back.
    @discardableResult
    func undoAbandonedMoves() async -> [UInt16] {
        let live = liveSessions()
        let ownSlots = running.withLock { $0 }
        let abandoned = placement.nodes.keys.flatMap { placement.slots(of: $0).map(\.slot) }.compactMap {
            slot -> (UInt16, SlotAssignment)? in
            guard let record = placement.assignment(of: slot), record.movingTo != nil else { return nil }
            if let mover = record.mover, live.contains(mover), mover != session || ownSlots.contains(slot) {
                return nil
            }
            return (slot, record)
        }
        var undone: [UInt16] = []
        for (slot, record) in abandoned.sorted(by: { $0.0 < $1.0 }) {
            guard running.withLock({ $0.insert(slot).inserted }) else { continue }
            defer { _ = running.withLock { $0.remove(slot) } }
            do {
                _ = try await rollBack(slot, record)
                undone.append(slot)
            } catch {
                logger.warning(
                    "could not undo an abandoned slot move; trying again later",
                    metadata: ["slot": "\(slot)", "error": "\(error)"])
            }
        }
        for (key, copy) in leftoverCopies.withLock({ $0 }) where await deleteCopy(copy.request, at: copy.node) {
            leftoverCopies.withLock { _ = $0.removeValue(forKey: key) }
        }
        return undone
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
        let moving = SlotAssignment(nodeID: source, epoch: epoch, movingTo: target, mover: session)
        guard try await placement.replace(slot, expected: current, with: moving) else {
            throw RPCError(.aborted, "Slot \(slot) changed while the move began; try again.", retryable: true)
        }
        let started = ContinuousClock.now
        var lap = started
        var steps: [String: UInt64] = [:]
        /// Ends a step: records how long it took, then holds the move there if a test asks (see `holdFolder`).
        func done(_ step: Step) async {
            let now = ContinuousClock.now
            steps[step.rawValue] = UInt64((now - lap) / .microseconds(1))
            await hold(after: step)
            lap = ContinuousClock.now
        }
        logger.info("moving slot", metadata: ["slot": "\(slot)", "from": "\(source)", "to": "\(target)"])
        var pulled = Durable_V1_SlotExportSummary()
        do {
            await hold(after: .marked)
            lap = ContinuousClock.now
            try await assign(slot, epoch, at: source, retired: true)
            await done(.retired)
            pulled = try await links.node(target).call(
                Methods.nodePullSlot,
                Durable_V1_PullSlotRequest.with {
                    $0.slot = UInt32(slot)
                    $0.epoch = epoch
                    $0.sourceAddress = placement.nodes[source] ?? ""
                    $0.sourceNodeID = source
                }, timeout: Self.pullTimeout)
            await done(.pulled)
            try await assign(slot, epoch, at: target)
            await done(.assigned)
            let owner = SlotAssignment(nodeID: target, epoch: epoch)
            guard try await placement.replace(slot, expected: moving, with: owner) else {
                throw RPCError(.aborted, "Slot \(slot)'s record changed during its move.")
            }
            steps[Step.recorded.rawValue] = UInt64((ContinuousClock.now - lap) / .microseconds(1))
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
        await hold(after: .recorded)
        _ = await deleteCopy(
            .with {
                $0.slot = UInt32(slot)
                $0.epoch = epoch
                $0.newOwner = target
            }, at: source)
        await hold(after: .deleted)
        logger.info(
            "slot moved",
            metadata: [
                "slot": "\(slot)", "from": "\(source)", "to": "\(target)", "rows": "\(pulled.rows)",
                "unavailable": "\(unavailable)", "steps-micros": "\(steps.sorted { $0.key < $1.key })",
            ])
        return .with {
            $0.fromNode = source
            $0.toNode = target
            $0.epoch = epoch
            $0.rows = pulled.rows
            $0.bytes = pulled.bytes
            $0.objects = pulled.objects
            $0.unavailableMicros = UInt64(unavailable / .microseconds(1))
            $0.stepMicros = steps
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
        _ = await deleteCopy(
            .with {
                $0.slot = UInt32(slot)
                $0.epoch = moving.epoch
                $0.newOwner = moving.nodeID
                $0.partialCopy = true
            }, at: target)
        return back
    }

    /// Has `node` delete its copy of a slot (see `Node/DeleteSlot`); whether it did. One it could not be asked is
    /// asked again by the next ``undoAbandonedMoves()``.
    private func deleteCopy(_ request: Durable_V1_DeleteSlotRequest, at node: String) async -> Bool {
        let key = "\(request.slot)@\(node)"
        do {
            let _: Durable_V1_DeleteSlotResponse = try await links.node(node).call(Methods.nodeDeleteSlot, request)
            leftoverCopies.withLock { _ = $0.removeValue(forKey: key) }
            return true
        } catch {
            logger.warning(
                request.partialCopy
                    ? "the target of an undone move kept its partial copy (it does not serve the slot); asking again later"
                    : "the old owner kept its copy of a moved slot (it serves it no more); asking again later",
                metadata: ["slot": "\(request.slot)", "node": "\(node)", "error": "\(error)"])
            leftoverCopies.withLock { $0[key] = (node, request) }
            return false
        }
    }

    /// Waits while the test's hold file for `step` exists (see ``holdFolder``).
    private func hold(after step: Step) async {
        guard let holdFolder else { return }
        let holdFile = "\(holdFolder)/hold-\(step.rawValue)"
        guard FileManager.default.fileExists(atPath: holdFile) else { return }
        logger.warning("slot move held after a step (DURABLE_FAULT_HOLD_SLOT_MOVES)", metadata: ["step": "\(step)"])
        _ = FileManager.default.createFile(atPath: "\(holdFolder)/held-\(step.rawValue)", contents: nil)
        while FileManager.default.fileExists(atPath: holdFile) {
            try? await Task.sleep(for: .milliseconds(20))
        }
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
