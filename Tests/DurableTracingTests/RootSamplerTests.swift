import DurableTracing
import OTel
import Testing
import Tracing

@Suite("The root sampler: the decision for traces that start in a process")
struct RootSamplerTests {
    @Test("ratio 1 records every trace, 0 none, 0.25 about a quarter")
    func ratios() {
        let always = RootSampler(ratio: 1, seed: 1)
        let never = RootSampler(ratio: 0, seed: 1)
        let quarter = RootSampler(ratio: 0.25, seed: 42)
        #expect((0..<1000).allSatisfy { _ in always.sample() })
        #expect(!(0..<1000).contains { _ in never.sample() })
        let recorded = (0..<100_000).filter { _ in quarter.sample() }.count
        #expect((23_000...27_000).contains(recorded), "\(recorded) of 100,000")
    }

    @Test("an unsampled traceparent is well-formed W3C with the sampled flag off, and fresh each time")
    func unsampledTraceparent() throws {
        var configuration = OTel.Configuration.default
        configuration.propagators = [.traceContext]
        configuration.traces.exporter = .none
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        let tracer = try OTel.makeTracingBackend(configuration: configuration).factory
        let sampler = RootSampler(ratio: 0.01, seed: 7)
        let first = sampler.unsampledTraceparent()
        let second = sampler.unsampledTraceparent()
        #expect(first != second)
        for traceparent in [first, second] {
            #expect(traceparent.utf8.count == 55)
            #expect(traceparent.hasPrefix("00-") && traceparent.hasSuffix("-00"))
            let context = CallTracing.context(from: ["traceparent": traceparent], using: tracer)
            #expect(!context.isEmpty, "\(traceparent) does not parse")
            // Passed on, it stays not sampled.
            let span = tracer.startSpan("child", context: context)
            #expect(!span.isRecording)
            span.end()
        }
    }
}
