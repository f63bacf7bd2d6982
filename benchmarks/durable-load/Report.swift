import Foundation
import Histogram

/// The figures of one run, as a text summary and as JSON.
struct Report {
    var target: String
    var workload: String
    var mode: String
    var callers: Int?
    var rate: Double?
    var objects: Int
    var listeners: Int?
    var result: RunResult
    /// The side stream of `--bystander-rate`: its offered rate and what it saw.
    var bystanders: (rate: Double, result: RunResult)?

    private var measuredSeconds: Double { seconds(result.measured) }
    private var throughput: Double { Double(result.completed) / max(measuredSeconds, 1e-9) }

    private static func latencies(_ result: RunResult) -> [(String, Double)] {
        let histogram = result.histogram
        func percentile(_ value: Double) -> Double {
            histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(value)) / 1e6
        }
        return [
            ("p50", percentile(50)), ("p90", percentile(90)), ("p99", percentile(99)), ("p99_9", percentile(99.9)),
            ("max", histogram.totalCount == 0 ? 0 : Double(histogram.max) / 1e6),
            ("mean", histogram.totalCount == 0 ? 0 : histogram.mean / 1e6),
        ]
    }

    private var latencies: [(String, Double)] { Self.latencies(result) }

    /// A few lines for people.
    var text: String {
        var lines: [String] = []
        let unit = listeners == nil ? "calls" : "deliveries"
        lines.append(
            "\(workload) \(target) \(mode)\(callers.map { ", \($0) callers" } ?? "")\(rate.map { ", \($0)/s offered" } ?? "")"
                + "\(listeners.map { ", \($0) sockets" } ?? "")")
        lines.append(
            String(
                format: "  %d %@ in %.2f s: %.0f %@/s", result.completed, unit, measuredSeconds, throughput, unit))
        lines.append(
            "  latency ms: " + latencies.map { String(format: "%@ %.3f", $0.0, $0.1) }.joined(separator: "  "))
        let failures = result.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        lines.append("  errors: " + (failures.isEmpty ? "none" : failures.joined(separator: ", ")))
        if result.notSent > 0 { lines.append("  not sent (over --max-in-flight): \(result.notSent)") }
        if let (rate, side) = bystanders {
            lines.append(String(format: "bystanders (other objects, %.0f/s offered): %d calls", rate, side.completed))
            lines.append(
                "  latency ms: "
                    + Self.latencies(side).map { String(format: "%@ %.3f", $0.0, $0.1) }.joined(separator: "  "))
            let sideFailures = side.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            lines.append("  errors: " + (sideFailures.isEmpty ? "none" : sideFailures.joined(separator: ", ")))
        }
        return lines.joined(separator: "\n")
    }

    /// The JSON document `--json` writes.
    var json: Data {
        var object: [String: Any] = [
            "target": target, "workload": workload, "mode": mode, "objects": objects,
            "seconds": (measuredSeconds * 1000).rounded() / 1000, "completed": result.completed,
            "errors": result.errors, "not_sent": result.notSent, "throughput": (throughput * 10).rounded() / 10,
            "latency_ms": Dictionary(uniqueKeysWithValues: latencies.map { ($0.0, ($0.1 * 1000).rounded() / 1000) }),
        ]
        object["callers"] = callers ?? NSNull()
        object["rate"] = rate ?? NSNull()
        if let listeners { object["listeners"] = listeners }
        if let (rate, side) = bystanders {
            object["bystanders"] = [
                "rate": rate, "completed": side.completed, "errors": side.errors,
                "latency_ms": Dictionary(
                    uniqueKeysWithValues: Self.latencies(side).map { ($0.0, ($0.1 * 1000).rounded() / 1000) }),
            ]
        }
        return (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data()
    }
}
