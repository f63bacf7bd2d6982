import Foundation
import TestSupport

/// The placement as `durable slots list --format json` prints it, read through a gateway with the admin token.
struct SlotListing {
    /// One slot's record.
    struct Record: Equatable {
        var node: String
        var epoch: UInt64
        /// The node it moves to, or "" when it is not moving.
        var movingTo: String
    }

    /// Every assigned slot's record.
    var slots: [UInt16: Record]
    /// Slots per node.
    var slotsPerNode: [String: Int]

    /// The listing, or `nil` when the command fails (a gateway that is restarting, say).
    ///
    /// - Throws: when the command printed something that is not the listing.
    static func read(gateway: String) async throws -> SlotListing? {
        let listing = try await ChildProcess.run(
            BuiltExecutable.durable, ["slots", "list", "--format", "json", "--gateway", gateway],
            environment: TestKeys.environment(included: true))
        guard listing.status == 0 else { return nil }
        let json = try JSONSerialization.jsonObject(with: Data(listing.output.utf8)) as? [String: Any]
        var slots: [UInt16: Record] = [:]
        for entry in json?["slots"] as? [[String: Any]] ?? [] {
            guard let slot = entry["slot"] as? Int else { continue }
            slots[UInt16(slot)] = Record(
                node: entry["node"] as? String ?? "", epoch: UInt64(entry["epoch"] as? Int ?? 0),
                movingTo: entry["movingTo"] as? String ?? "")
        }
        let slotsPerNode = Dictionary(
            uniqueKeysWithValues: (json?["nodes"] as? [[String: Any]] ?? []).map {
                ($0["node"] as? String ?? "?", $0["slots"] as? Int ?? -1)
            })
        return SlotListing(slots: slots, slotsPerNode: slotsPerNode)
    }
}
