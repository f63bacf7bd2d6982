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
    /// flags 00. Written straight into the string's storage: one allocation.
    public func unsampledTraceparent() -> String {
        // A zero id is invalid: the generator never gives zero twice in a row, and `| 1` keeps the span id non-zero.
        let (high, low, span) = (next(), next(), next() | 1)
        return String(unsafeUninitializedCapacity: TraceParent.length) { text in
            func hexDigit(_ value: UInt64) -> UInt8 {
                value < 10 ? UInt8(ascii: "0") + UInt8(value) : UInt8(ascii: "a") + UInt8(value - 10)
            }
            var index = 0
            func append(_ byte: UInt8) {
                text[index] = byte
                index += 1
            }
            func append(_ value: UInt64) {
                for shift in stride(from: 60, through: 0, by: -4) { append(hexDigit((value >> UInt64(shift)) & 0xF)) }
            }
            for byte in "00-".utf8 { append(byte) }
            append(high)
            append(low)
            append(UInt8(ascii: "-"))
            append(span)
            for byte in "-00".utf8 { append(byte) }
            return index
        }
    }

    /// SplitMix64 over an atomic counter: uniformly spread values, safe from any thread, no lock.
    private func next() -> UInt64 {
        var z = state.wrappingAdd(0x9E37_79B9_7F4A_7C15, ordering: .relaxed).newValue
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
