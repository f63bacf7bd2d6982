import CoreMetrics
import DurableWire
import Testing

@testable import DurableGateway

@Suite("The gateway refuses calls to an object its node just reported overloaded")
struct OverloadSheddingTests {
    private let overloaded = RPCError(
        .resourceExhausted, "Durable Object is overloaded. Too many requests queued.", retryable: true,
        overloaded: true)
    private let hot = [UInt8](repeating: 1, count: 32)
    private let other = [UInt8](repeating: 2, count: 32)

    @Test("an overloaded answer starts a hold-off with the node's own error; others and later calls go through")
    func holdOff() {
        let shedding = OverloadShedding(holdOff: .milliseconds(5), factory: NOOPMetricsHandler.instance)
        let start = ContinuousClock.now
        #expect(shedding.refusal(for: hot, now: start) == nil)
        shedding.record(.failure(overloaded), for: hot, now: start)
        #expect(shedding.refusal(for: hot, now: start + .milliseconds(1)) == overloaded)
        #expect(shedding.refusal(for: hot, now: start + .microseconds(4_999)) == overloaded)
        #expect(shedding.refusal(for: other, now: start + .milliseconds(1)) == nil)
        #expect(shedding.refusal(for: hot, now: start + .milliseconds(5)) == nil, "the hold-off is over")
        #expect(shedding.refusal(for: hot, now: start + .milliseconds(1)) == nil, "and its entry is gone")
    }

    @Test("only overloaded refusals count: other failures and successes start nothing, and zero turns it off")
    func onlyOverload() {
        let shedding = OverloadShedding(holdOff: .seconds(60), factory: NOOPMetricsHandler.instance)
        let now = ContinuousClock.now
        shedding.record(.success([1]), for: hot, now: now)
        shedding.record(.failure(.unavailable("node down")), for: hot, now: now)
        shedding.record(.failure(RPCError(.resourceExhausted, "not an object's queue")), for: hot, now: now)
        #expect(shedding.refusal(for: hot, now: now) == nil)
        let off = OverloadShedding(holdOff: .zero, factory: NOOPMetricsHandler.instance)
        off.record(.failure(overloaded), for: hot, now: now)
        #expect(off.refusal(for: hot, now: now) == nil)
    }

    @Test("the table holds at most its capacity, dropping expired entries, then the one that ends first")
    func capacity() {
        let shedding = OverloadShedding(holdOff: .seconds(1), capacity: 3, factory: NOOPMetricsHandler.instance)
        let start = ContinuousClock.now
        let ids = (0..<5).map { [UInt8](repeating: UInt8($0), count: 32) }
        for (index, id) in ids.enumerated() {
            shedding.record(.failure(overloaded), for: id, now: start + .milliseconds(index))
        }
        let now = start + .milliseconds(10)
        #expect(shedding.refusal(for: ids[0], now: now) == nil, "the earliest-ending entries made room")
        #expect(shedding.refusal(for: ids[1], now: now) == nil)
        #expect(ids[2...].allSatisfy { shedding.refusal(for: $0, now: now) == overloaded })
    }
}
