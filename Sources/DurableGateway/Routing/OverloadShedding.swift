import CoreMetrics
import DurableWire
import Synchronization

/// Refuses calls to an object its node has just reported overloaded, at the gateway, without forwarding them.
///
/// When a node answers that an object's queue is full (`RESOURCE_EXHAUSTED`, overloaded), the queue holds work for
/// a while: 1,000 requests by default, tens of milliseconds of a busy object's time. Calls to that object in the
/// next few milliseconds would only be refused by the node after crossing the network, the node's decoder and its
/// queue check, each costing the machine about what a served call costs; under a flood that is what slows the
/// object's neighbours. For ``holdOff`` after such an answer, the gateway answers calls to that object itself, with
/// the node's error (the same status, message and flags: the call never ran and may be retried). The first call after
/// the hold-off goes to the node again, which either serves it or reports the object overloaded once more.
///
/// The hold-off is short next to the time a full queue takes to drain, so the object never runs dry because of it.
final class OverloadShedding: Sendable {
    /// How long calls to an object reported overloaded are refused at the gateway.
    let holdOff: Duration
    /// The most objects tracked at once; beyond it, expired entries are dropped, then the oldest.
    let capacity: Int

    private struct Entry {
        var error: RPCError
        var until: ContinuousClock.Instant
    }

    private let entries = Mutex<[[UInt8]: Entry]>([:])
    /// How many entries the table holds, read without the lock: most calls find it zero and look no further.
    private let count = Atomic<Int>(0)
    private let shed: Counter

    /// The metric counting calls refused at the gateway.
    static let metricName = "durable_gateway_shed_calls_total"

    init(holdOff: Duration = .milliseconds(5), capacity: Int = 10_000, factory: any MetricsFactory) {
        self.holdOff = holdOff
        self.capacity = capacity
        shed = Counter(label: Self.metricName, dimensions: [], factory: factory)
    }

    /// The error to answer a call to object `id` with now, if its node reported it overloaded within the hold-off.
    func refusal(for id: [UInt8], now: ContinuousClock.Instant = .now) -> RPCError? {
        guard count.load(ordering: .relaxed) > 0 else { return nil }
        let error: RPCError? = entries.withLock { entries in
            guard let entry = entries[id] else { return nil }
            if entry.until > now { return entry.error }
            entries[id] = nil
            count.store(entries.count, ordering: .relaxed)
            return nil
        }
        if error != nil { shed.increment() }
        return error
    }

    /// Notes the outcome of a call to object `id` that its node answered: an overloaded refusal starts a hold-off.
    func record(_ result: Result<[UInt8], RPCError>, for id: [UInt8], now: ContinuousClock.Instant = .now) {
        guard holdOff > .zero, case .failure(let error) = result, error.overloaded else { return }
        entries.withLock { entries in
            if entries.count >= capacity, entries[id] == nil {
                entries = entries.filter { $0.value.until > now }
                if entries.count >= capacity, let oldest = entries.min(by: { $0.value.until < $1.value.until }) {
                    entries[oldest.key] = nil
                }
            }
            entries[id] = Entry(error: error, until: now + holdOff)
            count.store(entries.count, ordering: .relaxed)
        }
    }
}
