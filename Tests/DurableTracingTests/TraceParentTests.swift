import DurableTracing
import Testing

/// The cheap check that tells a call not recorded apart without building a span context.
@Suite("traceparent's form and sampled flag")
struct TraceParentTests {
    static let traceID = "0af7651916cd43dd8448eb211c80319c"
    static let parentID = "b7ad6b7169203331"

    @Test("a version-00 traceparent gives its sampled flag: the low bit of the flags")
    func flags() {
        #expect(TraceParent.sampledFlag(of: "00-\(Self.traceID)-\(Self.parentID)-01") == true)
        #expect(TraceParent.sampledFlag(of: "00-\(Self.traceID)-\(Self.parentID)-00") == false)
        #expect(TraceParent.sampledFlag(of: "00-\(Self.traceID)-\(Self.parentID)-03") == true)
        #expect(TraceParent.sampledFlag(of: "00-\(Self.traceID)-\(Self.parentID)-fe") == false)
    }

    @Test(
        "anything but the plain version-00 form is left to the tracer's propagator (nil)",
        arguments: [
            "", "garbage", "00-\(traceID)-\(parentID)", "00-\(traceID)-\(parentID)-01-extra",
            "00-00000000000000000000000000000000-\(parentID)-01", "00-\(traceID)-0000000000000000-01",
            "00-zzf7651916cd43dd8448eb211c80319c-\(parentID)-01", "00-\(traceID)-\(parentID)-0",
            "ff-\(traceID)-\(parentID)-01", "00-0AF7651916CD43DD8448EB211C80319C-\(parentID)-01",
            "01-\(traceID)-\(parentID)-01", "00-\(traceID)-\(parentID)-0g", "00_\(traceID)-\(parentID)-01",
        ])
    func otherForms(traceparent: String) {
        #expect(TraceParent.sampledFlag(of: traceparent) == nil)
    }

    @Test("the root sampler's unsampled traceparent has the version-00 form with the sampled flag off")
    func rootSamplersTraceparent() {
        let sampler = RootSampler(ratio: 0, seed: 3)
        for _ in 0..<100 {
            #expect(TraceParent.sampledFlag(of: sampler.unsampledTraceparent()) == false)
        }
    }

    @Test("the last flags digit, for a traceparent of a later version")
    func lastDigit() {
        #expect(TraceParent.lastFlagsDigitIsSampled("01-\(Self.traceID)-\(Self.parentID)-01"))
        #expect(!TraceParent.lastFlagsDigitIsSampled("01-\(Self.traceID)-\(Self.parentID)-02"))
        #expect(!TraceParent.lastFlagsDigitIsSampled(""))
    }
}
