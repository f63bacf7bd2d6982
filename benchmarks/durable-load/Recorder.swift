import DurableObjects
import Foundation
import Histogram
import Synchronization

/// Latencies are recorded in nanoseconds, up to a minute, with three significant digits.
func makeHistogram() -> Histogram<UInt64> {
    Histogram<UInt64>(highestTrackableValue: 60_000_000_000, numberOfSignificantValueDigits: .three)
}

/// Nanoseconds in a duration (negative durations count as zero).
func nanoseconds(_ duration: Duration) -> UInt64 {
    let (seconds, attoseconds) = duration.components
    return UInt64(max(0, seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
}

/// Seconds in a duration, as a fraction.
func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

/// What a run collects: a latency histogram, completions, and failures by kind. Shared by every caller; each
/// caller can also keep a histogram of its own and merge it at the end (``merge(_:)``), which is cheaper under
/// many callers.
final class Recorder: Sendable {
    private struct State {
        var histogram = makeHistogram()
        var errors: [String: Int] = [:]
    }
    private let state = Mutex(State())
    private let completedCount = Atomic<Int>(0)
    private let failedCount = Atomic<Int>(0)
    /// Whether samples count (false while warming up).
    let recording = Atomic<Bool>(false)

    /// Completed calls so far (successes and failures).
    var completed: Int { completedCount.load(ordering: .relaxed) }
    /// Failed calls so far.
    var failed: Int { failedCount.load(ordering: .relaxed) }

    /// Records one call's latency into the shared histogram.
    func record(latency: UInt64) {
        guard recording.load(ordering: .relaxed) else { return }
        completedCount.add(1, ordering: .relaxed)
        state.withLock { _ = $0.histogram.record(latency) }
    }

    /// Counts a call whose latency the caller keeps in its own histogram.
    func countCompletion() {
        guard recording.load(ordering: .relaxed) else { return }
        completedCount.add(1, ordering: .relaxed)
    }

    /// Counts a failure under its kind (``kind(of:)``).
    func record(error: any Error) {
        guard recording.load(ordering: .relaxed) else { return }
        failedCount.add(1, ordering: .relaxed)
        let kind = Self.kind(of: error)
        state.withLock { $0.errors[kind, default: 0] += 1 }
    }

    /// Merges a caller's own histogram.
    func merge(_ histogram: Histogram<UInt64>) {
        state.withLock { $0.histogram.add(histogram) }
    }

    /// The histogram and the errors collected.
    func snapshot() -> (histogram: Histogram<UInt64>, errors: [String: Int]) {
        state.withLock { ($0.histogram, $0.errors) }
    }

    /// A failure's kind: `overloaded` (counted apart from everything else), the status code's name in lower case
    /// (`unavailable`, `deadline_exceeded`, …), `http_<status>` for an HTTP answer that is not 200, or
    /// `transport` for anything else.
    static func kind(of error: any Error) -> String {
        switch error {
        case let error as DurableObjectError:
            return error.overloaded ? "overloaded" : error.code.name.lowercased()
        case let error as HTTPStatusError:
            return error.overloaded ? "overloaded" : "http_\(error.status)"
        default:
            return "transport"
        }
    }
}

/// An HTTP answer other than 200.
struct HTTPStatusError: Error, CustomStringConvertible {
    var status: Int
    var body: String
    /// The bridge answers overload with 503 and the object's overload message.
    var overloaded: Bool { status == 503 && body.lowercased().contains("overloaded") }
    var description: String { "HTTP \(status): \(body)" }
}
