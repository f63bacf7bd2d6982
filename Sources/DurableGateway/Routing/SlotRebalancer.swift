import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Logging
import Synchronization

/// Which slots to move so that every node owns its share of the assigned slots: from the node that owns the most to
/// the one that owns the fewest, one slot at a time, until they differ by at most one.
public enum SlotBalancePlanner {
    /// A planned move.
    public struct Move: Sendable, Equatable {
        /// The slot.
        public var slot: UInt16
        /// Its owner now.
        public var from: String
        /// Where it goes.
        public var to: String
    }

    /// The moves that balance `slotsByNode` (every node that may own slots, with the slots it owns), at most
    /// `limit` of them. Each node gives away its highest-numbered slots first; ties go to the lower node id, so the
    /// plan is the same for the same input.
    public static func plan(slotsByNode: [String: [UInt16]], limit: Int) -> [Move] {
        guard slotsByNode.count > 1, limit > 0 else { return [] }
        var owned = slotsByNode.mapValues { $0.sorted() }
        var moves: [Move] = []
        while moves.count < limit {
            let ordered = owned.sorted {
                $0.value.count != $1.value.count ? $0.value.count < $1.value.count : $0.key < $1.key
            }
            guard let least = ordered.first, let most = ordered.last, most.value.count - least.value.count > 1,
                let slot = owned[most.key]?.popLast()
            else { break }
            owned[least.key, default: []].append(slot)
            moves.append(Move(slot: slot, from: most.key, to: least.key))
        }
        return moves
    }
}

/// Runs `Admin/Rebalance`: rounds of planned moves (``SlotBalancePlanner``), each at most a share of the assigned
/// slots, several moves at a time through the ``SlotMover``, until the nodes are balanced or a round moves nothing.
final class SlotRebalancer: Sendable {
    private let placement: any PlacementStore
    private let mover: SlotMover
    /// The nodes that may own slots now (registered, and alive where the store knows it).
    private let eligibleNodes: @Sendable () -> Set<String>
    private let logger: Logger
    /// Whether a rebalance runs through this gateway.
    private let running = Mutex(false)

    init(
        placement: any PlacementStore, mover: SlotMover, eligibleNodes: @escaping @Sendable () -> Set<String>,
        logger: Logger
    ) {
        self.placement = placement
        self.mover = mover
        self.eligibleNodes = eligibleNodes
        self.logger = logger
    }

    /// The eligible nodes and the slots each owns now.
    func slotsByNode() -> [String: [UInt16]] {
        Dictionary(uniqueKeysWithValues: eligibleNodes().map { node in (node, placement.slots(of: node).map(\.slot)) })
    }

    /// Rebalances (to the end) when the nodes' shares of the assigned slots differ by more than a tenth of a share;
    /// what a gateway with `autoRebalance` does when a node registers. Nothing when a rebalance runs already.
    func rebalanceIfUneven() async {
        let counts = slotsByNode().values.map(\.count)
        guard counts.count > 1, let most = counts.max(), let least = counts.min() else { return }
        let share = Double(counts.reduce(0, +)) / Double(counts.count)
        guard Double(most - least) > max(1, share / 10) else { return }
        logger.notice(
            "the nodes' shares of the slots are uneven: rebalancing",
            metadata: ["most": "\(most)", "least": "\(least)"])
        do {
            _ = try await rebalance(Durable_V1_RebalanceRequest()) { _ in }
        } catch {
            logger.info("no automatic rebalance: \(error)")
        }
    }

    /// Rebalances; `progress` gets each move as it ends.
    ///
    /// - Throws: `FAILED_PRECONDITION` when a rebalance runs already, `INVALID_ARGUMENT` for a share outside
    ///   (0, 1].
    func rebalance(
        _ request: Durable_V1_RebalanceRequest,
        progress: @escaping @Sendable (Durable_V1_RebalanceProgress) async -> Void
    ) async throws -> Durable_V1_RebalanceResponse {
        let share = request.maxShare == 0 ? 0.1 : request.maxShare
        guard share > 0, share <= 1 else {
            throw RPCError(
                .invalidArgument, "The share of slots per round must be above 0 and at most 1, not \(share).")
        }
        let parallel = Int(request.parallel == 0 ? 4 : min(request.parallel, 64))
        guard
            running.withLock({ running in
                defer { running = true }
                return !running
            })
        else {
            throw RPCError(.failedPrecondition, "A rebalance runs through this gateway already.")
        }
        defer { running.withLock { $0 = false } }

        var response = Durable_V1_RebalanceResponse()
        while true {
            let owned = slotsByNode()
            let assigned = owned.values.reduce(0) { $0 + $1.count }
            let limit = max(1, Int((Double(assigned) * share).rounded(.down)))
            let plan = SlotBalancePlanner.plan(slotsByNode: owned, limit: limit)
            guard !plan.isEmpty else { break }
            response.rounds += 1
            let round = response.rounds
            logger.info("rebalance round", metadata: ["round": "\(round)", "moves": "\(plan.count)"])
            if request.dryRun {
                for (index, move) in plan.enumerated() {
                    await progress(Self.progress(round, index, plan, move))
                }
                break
            }
            let (moved, failed) = await run(plan, round: round, parallel: parallel, progress: progress)
            response.moved += UInt32(moved)
            response.failed += UInt32(failed)
            if moved == 0 { break }
        }
        response.nodes = slotsByNode().sorted { $0.key < $1.key }.map { node, slots in
            .with {
                $0.nodeID = node
                $0.slots = UInt32(slots.count)
            }
        }
        logger.info(
            "rebalance ended",
            metadata: ["rounds": "\(response.rounds)", "moved": "\(response.moved)", "failed": "\(response.failed)"])
        return response
    }

    /// Runs one round's moves, `parallel` at a time; returns how many moved and how many failed.
    private func run(
        _ plan: [SlotBalancePlanner.Move], round: UInt32, parallel: Int,
        progress: @escaping @Sendable (Durable_V1_RebalanceProgress) async -> Void
    ) async -> (Int, Int) {
        await withTaskGroup(of: Bool.self) { group in
            var next = 0
            var moved = 0
            var failed = 0
            func start() {
                guard next < plan.count else { return }
                let index = next
                next += 1
                group.addTask { [mover] in
                    let move = plan[index]
                    var report = Self.progress(round, index, plan, move)
                    do {
                        report.moved = try await mover.move(
                            .with {
                                $0.slot = UInt32(move.slot)
                                $0.toNode = move.to
                            })
                    } catch {
                        report.error = "\(error)"
                    }
                    await progress(report)
                    return report.error.isEmpty
                }
            }
            for _ in 0..<parallel { start() }
            for await ok in group {
                if ok { moved += 1 } else { failed += 1 }
                start()
            }
            return (moved, failed)
        }
    }

    private static func progress(
        _ round: UInt32, _ index: Int, _ plan: [SlotBalancePlanner.Move], _ move: SlotBalancePlanner.Move
    ) -> Durable_V1_RebalanceProgress {
        .with {
            $0.round = round
            $0.index = UInt32(index + 1)
            $0.planned = UInt32(plan.count)
            $0.slot = UInt32(move.slot)
            $0.fromNode = move.from
            $0.toNode = move.to
        }
    }
}
