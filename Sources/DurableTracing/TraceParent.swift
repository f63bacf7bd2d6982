/// A cheap reading of a W3C `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header), so that a
/// call not recorded is told apart without building a span context: the form is checked and the sampled flag read,
/// and nothing is allocated.
public enum TraceParent {
    /// The length of a version-00 `traceparent`: `00-` 32 hex digits `-` 16 hex digits `-` 2 hex digits.
    public static let length = 55

    /// The sampled flag of `traceparent` when it has the version-00 form (lowercase hex, a trace id and a parent id
    /// that are not all zeros); `nil` for any other text, which the tracer's propagator then judges (it also reads
    /// later versions).
    public static func sampledFlag(of traceparent: String) -> Bool? {
        var traceparent = traceparent
        return traceparent.withUTF8 { bytes -> Bool? in
            guard bytes.count == length, bytes[0] == UInt8(ascii: "0"), bytes[1] == UInt8(ascii: "0"),
                bytes[2] == dash, bytes[35] == dash, bytes[52] == dash
            else { return nil }
            guard let traceIDIsZero = hexRun(bytes, 3..<35), !traceIDIsZero,
                let parentIDIsZero = hexRun(bytes, 36..<52), !parentIDIsZero,
                hexRun(bytes, 53..<55) != nil, let flags = hexValue(bytes[54])
            else { return nil }
            return flags & 1 == 1
        }
    }

    /// Whether the last digit of `traceparent`'s flags has the sampled bit set (for a `traceparent` the propagator
    /// has read as well formed).
    public static func lastFlagsDigitIsSampled(_ traceparent: String) -> Bool {
        guard let last = traceparent.utf8.last, let digit = hexValue(last) else { return false }
        return digit & 1 == 1
    }

    private static let dash = UInt8(ascii: "-")

    /// Whether `bytes[range]` is all zeros (`nil` when it is not all lowercase hex digits).
    private static func hexRun(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Bool? {
        var allZero = true
        for index in range {
            guard let value = hexValue(bytes[index]) else { return nil }
            if value != 0 { allZero = false }
        }
        return allZero
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
