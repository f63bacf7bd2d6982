import ArgumentParser
import DurableClient
import DurableWire
import Foundation

/// `durable slots drain NODE`: moves every slot of a node to the other nodes, one at a time, so that the node can be
/// removed. (It lives under `slots`: `durable node`'s own `--gateway` option is the gateway a node joins.)
struct SlotsDrainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain",
        abstract: "Move every slot of a node, with its data, to the other nodes (online), so that it can be removed.",
        discussion: """
            Each slot goes to the other node that owns the fewest slots at that moment (or only to the --to nodes), \
            one slot at a time, as `durable slots move` moves it: calls to a slot are told to retry while it moves. \
            A slot that fails to move stays with the drained node and is reported; run the command again to retry it.
            """
    )

    @Argument(help: "The node to empty.")
    var node: String

    @Option(name: .customLong("to"), help: "Move the slots only to these nodes (comma-separated).")
    var targets: String?

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func run() async throws {
        let allowed = targets.map { Set($0.split(separator: ",").map(String.init)) }
        let (slots, failures) = try await withAdminConnection(admin) { connection in
            let listing = try Durable_V1_ListSlotsResponse(
                serializedBytes: try await connection.call(
                    Methods.adminListSlots, try Durable_V1_ListSlotsRequest().serializedBytes()))
            guard listing.nodes.contains(where: { $0.nodeID == node }) else {
                throw CommandError("No node '\(node)' is registered.")
            }
            var load = Dictionary(
                uniqueKeysWithValues: listing.nodes.filter {
                    $0.nodeID != node && (allowed?.contains($0.nodeID) ?? true)
                }
                .map { ($0.nodeID, Int($0.slots)) })
            guard !load.isEmpty else { throw CommandError("There is no other node to move the slots of \(node) to.") }
            let mine = listing.slots.filter { $0.nodeID == node }.map(\.slot)
            FileHandle.standardError.write(Data("draining \(node): \(mine.count) slots\n".utf8))
            var failures: [String] = []
            for (index, slot) in mine.enumerated() {
                let target = load.min { $0.value != $1.value ? $0.value < $1.value : $0.key < $1.key }!.key
                do {
                    let moved = try Durable_V1_MoveSlotResponse(
                        serializedBytes: try await connection.call(
                            Methods.adminMoveSlot,
                            try Durable_V1_MoveSlotRequest.with {
                                $0.slot = slot
                                $0.toNode = target
                            }.serializedBytes(), timeout: .seconds(900)))
                    load[target, default: 0] += 1
                    print(
                        "[\(index + 1)/\(mine.count)] slot \(slot) → \(target): \(moved.objects) objects, "
                            + String(format: "%.1f ms", Double(moved.unavailableMicros) / 1000) + moved.stepsText)
                    fflush(nil)
                } catch {
                    failures.append("slot \(slot): \(error)")
                    FileHandle.standardError.write(Data("[\(index + 1)/\(mine.count)] slot \(slot): \(error)\n".utf8))
                }
            }
            return (mine.count, failures)
        }
        guard failures.isEmpty else {
            throw CommandError(
                "\(failures.count) of \(slots) slots of \(node) did not move (run the command again): "
                    + failures.joined(separator: "; "))
        }
        print("\(node) is empty: \(slots) slots moved")
    }
}
