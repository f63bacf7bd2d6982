import DurableChaos
import DurableClient
import DurableObjects
import Foundation

/// The log of a `Register` object as `GET /log` answers it.
struct StoredLog: Decodable {
    var length: Int
    var entries: [String]
}

/// What the final checks found.
struct Findings: Codable {
    var lostAcknowledgedWrites = 0
    var phantomWrites = 0
    var partialBatches = 0
    var problems: [String] = []

    mutating func problem(_ text: String) {
        if problems.count < 50 { problems.append(text) }
    }
}

enum Verification {
    /// Checks each counter against its increments: every acknowledged increment is counted, none counted that
    /// was never sent, and no two acknowledged increments answered the same value (no lost update).
    static func counters(_ values: [String: Int], record: ChaosRecord.State, findings: inout Findings) {
        for (name, value) in values.sorted(by: { $0.key < $1.key }) {
            let acks = record.counterAcks[name] ?? []
            let unknown = record.counterUnknown[name] ?? 0
            if Set(acks).count != acks.count {
                findings.lostAcknowledgedWrites += acks.count - Set(acks).count
                findings.problem("counter \(name): two acknowledged increments answered the same value")
            }
            if value < acks.count || value < (acks.max() ?? 0) {
                findings.lostAcknowledgedWrites += max(acks.count - value, (acks.max() ?? 0) - value)
                findings.problem("counter \(name) is \(value) after \(acks.count) acknowledged increments")
            }
            if value > acks.count + unknown {
                findings.phantomWrites += value - acks.count - unknown
                findings.problem(
                    "counter \(name) is \(value): more than \(acks.count) acknowledged + \(unknown) unknown increments")
            }
        }
    }

    /// Checks each log: its length matches its entries (each append's two keys were committed together), every
    /// acknowledged append is there once at the index it was given, and nothing is there that was not sent or
    /// that was refused.
    static func logs(_ logs: [String: StoredLog], record: ChaosRecord.State, findings: inout Findings) {
        for (name, log) in logs.sorted(by: { $0.key < $1.key }) {
            if log.length != log.entries.count {
                findings.partialBatches += 1
                findings.problem("log \(name): length \(log.length) but \(log.entries.count) entries")
            }
            var positions: [String: Int] = [:]
            for (index, entry) in log.entries.enumerated() {
                if positions[entry] != nil { findings.problem("log \(name): \(entry) appears twice") }
                positions[entry] = index
            }
            for append in record.appendsAcked[name] ?? [] {
                guard let position = positions[append.value] else {
                    findings.lostAcknowledgedWrites += 1
                    findings.problem("log \(name): acknowledged append \(append.value) is missing")
                    continue
                }
                if position != append.index {
                    findings.problem(
                        "log \(name): \(append.value) is at \(position), acknowledged at \(append.index ?? -1)")
                }
            }
            let sent = Set((record.appendsAcked[name] ?? []).map(\.value)).union(record.appendsUnknown[name] ?? [])
            for entry in log.entries where !sent.contains(entry) {
                findings.phantomWrites += 1
                let refused = record.appendsFailed[name]?.contains(entry) == true
                findings.problem("log \(name): \(entry) is there but was \(refused ? "refused" : "never sent")")
            }
        }
    }
}
