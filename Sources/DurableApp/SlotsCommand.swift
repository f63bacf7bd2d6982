import ArgumentParser
import DurableClient
import DurableWire
import Foundation

/// `durable slots`: the placement of the 4096 slots (admin token).
struct SlotsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slots",
        abstract: "Inspect and move the cluster's slots (needs the admin token).",
        subcommands: [SlotsListCommand.self, SlotsMoveCommand.self, SlotsDrainCommand.self]
    )
}

/// `durable slots list`: each assigned slot's owner, epoch, objects and bytes, and totals per node.
struct SlotsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "List the assigned slots (owner, epoch, objects, bytes) and the totals per node.",
        discussion: """
            An object's slot is the first two bytes of its id, big-endian, modulo 4096; a slot gets an owner on the \
            first call to one of its objects. Objects and bytes count what each owner has stored (keys and values \
            of the objects' storage), read from its database at one snapshot; nothing is activated.
            """
    )

    @Option(help: "Only the slots of this node.")
    var node: String?

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func run() async throws {
        let request = Durable_V1_ListSlotsRequest.with { $0.nodeID = node ?? "" }
        let response = try await withAdminConnection(admin) { connection in
            try Durable_V1_ListSlotsResponse(
                serializedBytes: try await connection.call(Methods.adminListSlots, try request.serializedBytes()))
        }
        switch format {
        case .table:
            printTable(
                ["SLOT", "NODE", "EPOCH", "OBJECTS", "BYTES", "MOVING TO"],
                response.slots.map {
                    ["\($0.slot)", $0.nodeID, "\($0.epoch)", "\($0.objects)", "\($0.bytes)", $0.movingTo]
                })
            print("")
            printTable(
                ["NODE", "SLOTS", "SHARE", "OBJECTS", "BYTES"],
                response.nodes.map { node in
                    [
                        node.nodeID, "\(node.slots)",
                        String(format: "%.1f %%", Double(node.slots) * 100 / 4096), "\(node.objects)", "\(node.bytes)",
                    ]
                })
            print("\(response.slots.count) of 4096 slots assigned")
        case .json:
            try printJSON([
                "slots": response.slots.map {
                    [
                        "slot": $0.slot, "node": $0.nodeID, "epoch": $0.epoch, "objects": $0.objects, "bytes": $0.bytes,
                        "movingTo": $0.movingTo,
                    ] as [String: Any]
                },
                "nodes": response.nodes.map {
                    ["node": $0.nodeID, "slots": $0.slots, "objects": $0.objects, "bytes": $0.bytes] as [String: Any]
                },
                "failures": response.failures.map { ["node": $0.nodeID, "message": $0.message] },
            ])
        }
        guard response.failures.isEmpty else {
            for failure in response.failures {
                FileHandle.standardError.write(Data("warning: node \(failure.nodeID): \(failure.message)\n".utf8))
            }
            let nodes = response.failures.map(\.nodeID).joined(separator: ", ")
            throw CommandError("the usage of node(s) \(nodes) could not be read; their slots show 0 objects and bytes")
        }
    }
}

/// `durable slots move SLOT --to NODE`: moves one slot, with its objects' data, to another node.
struct SlotsMoveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "move",
        abstract: "Move a slot, with its objects' data, to another node (online: its calls retry while it moves).",
        discussion: """
            The slot's old owner stops serving it (its objects are retired and their writes fenced), the new owner \
            copies its rows and checks them against the old owner's checksum, the placement records the new owner, \
            and the old owner deletes its copy. Calls to the slot are answered with a retryable UNAVAILABLE while it \
            moves. A move that fails leaves the slot with its old owner.
            """
    )

    @Argument(help: "The slot (0 to 4095); `durable slots list` shows each one's owner.")
    var slot: Int

    @Option(help: "The node to move it to.")
    var to: String

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func validate() throws {
        guard (0..<4096).contains(slot) else { throw ValidationError("SLOT must be between 0 and 4095") }
    }

    func run() async throws {
        FileHandle.standardError.write(Data("moving slot \(slot) to \(to)…\n".utf8))
        let request = Durable_V1_MoveSlotRequest.with {
            $0.slot = UInt32(slot)
            $0.toNode = to
        }
        let moved = try await withAdminConnection(admin) { connection in
            try Durable_V1_MoveSlotResponse(
                serializedBytes: try await connection.call(
                    Methods.adminMoveSlot, try request.serializedBytes(), timeout: .seconds(900)))
        }
        print(
            "moved slot \(slot) from \(moved.fromNode) to \(moved.toNode) at epoch \(moved.epoch): \(moved.objects) "
                + "objects, \(moved.rows) rows, \(moved.bytes) bytes; calls to it waited "
                + String(format: "%.1f ms", Double(moved.unavailableMicros) / 1000) + moved.stepsText)
    }
}

extension Durable_V1_MoveSlotResponse {
    /// How long each step of the move took, as ` (retired 1.2, pulled 30.4, assigned 2.0, recorded 3.3 ms)`.
    var stepsText: String {
        let steps = ["retired", "pulled", "assigned", "recorded"].compactMap { step in
            stepMicros[step].map { "\(step) " + String(format: "%.1f", Double($0) / 1000) }
        }
        return steps.isEmpty ? "" : " (" + steps.joined(separator: ", ") + " ms)"
    }
}
