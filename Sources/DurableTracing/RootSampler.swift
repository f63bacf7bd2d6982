import Synchronization

/// The sampling decision for a trace that starts in this process (a call without a caller's `traceparent`), taken
/// before any span is made: a draw against the ratio from a cheap generator (no system call), so that a trace not
/// sampled costs no span at all. Its calls carry a fresh `traceparent` with the sampled flag off
/// (``unsampledTraceparent()``), and every process downstream follows that decision.
public final class RootSampler: Sendable {
    /// The share of the traces started here that are recorded, 0 to 1.
    public let ratio: Double
    private let state: Atomic<UInt64>

    /// A sampler recording `ratio` of the traces (clamped to 0...1).
    public init(ratio: Double, seed: UInt64 = UInt64.random(in: .min ... .max)) {
        self.ratio = min(max(ratio, 0), 1)
        state = Atomic(seed)
    }

    /// Whether the next trace started here is recorded.
    public func sample() -> Bool {
        if ratio >= 1 { return true }
        if ratio <= 0 { return false }
        return Double(next() >> 11) * 0x1p-53 < ratio
    }

    /// A W3C `traceparent` for a trace started here and not recorded: version 00, a fresh trace id and span id,
    /// flags 00.
    public func unsampledTraceparent() -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(55)
        text += Array("00-".utf8)
        func append(_ value: UInt64) {
            for shift in stride(from: 60, through: 0, by: -4) {
                text.append(digits[Int((value >> UInt64(shift)) & 0xF)])
            }
        }
        // A zero id is invalid: the generator never gives zero twice in a row, and `| 1` keeps the span id non-zero.
        append(next())
        append(next())
        text.append(UInt8(ascii: "-"))
        append(next() | 1)
        text += Array("-00".utf8)
        return String(decoding: text, as: UTF8.self)
    }

    /// SplitMix64 over an atomic counter: uniformly spread values, safe from any thread, no lock.
    private func next() -> UInt64 {
        var z = state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
