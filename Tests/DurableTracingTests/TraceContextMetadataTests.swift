import DurableTracing
import OTel
import Testing
import Tracing

/// W3C trace context in call metadata, read and written by the tracer `durable` bootstraps (swift-otel's, with the
/// trace-context propagator), through ``MetadataInjector`` and ``MetadataExtractor``.
@Suite("traceparent in call metadata")
struct TraceContextMetadataTests {
    /// The tracer of a process started with `--otel-endpoint`, exporting nowhere (its service is never run).
    let tracer: any Tracer

    init() throws {
        var configuration = OTel.Configuration.default
        configuration.propagators = [.traceContext]
        configuration.traces.exporter = .none
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.sampler = .parentBasedAlwaysOn
        tracer = try OTel.makeTracingBackend(configuration: configuration).factory
    }

    static let traceID = "0af7651916cd43dd8448eb211c80319c"
    static let parentID = "b7ad6b7169203331"

    @Test("a well-formed traceparent is extracted, and a child span injects the same trace id with its own span id")
    func roundTrip() throws {
        let incoming = [
            "traceparent": "00-\(Self.traceID)-\(Self.parentID)-01", "tracestate": "vendor=value", "other": "kept",
        ]
        let context = CallTracing.context(from: incoming, using: tracer)
        let span = tracer.startSpan("child", context: context)
        defer { span.end() }
        let outgoing = CallTracing.metadata(["other": "kept"], carrying: span.context, using: tracer)
        let parts = try #require(outgoing["traceparent"]).split(separator: "-").map(String.init)
        #expect(parts.count == 4)
        #expect(parts[0] == "00")
        #expect(parts[1] == Self.traceID)
        #expect(parts[2].count == 16 && parts[2] != Self.parentID)
        #expect(parts[3] == "01")
        #expect(outgoing["tracestate"] == "vendor=value")
        #expect(outgoing["other"] == "kept")
    }

    @Test(
        "a malformed traceparent is ignored: no error, and the next span starts a trace of its own",
        arguments: [
            "", "garbage", "00-\(traceID)-\(parentID)", "00-\(traceID)-\(parentID)-01-extra",
            "00-00000000000000000000000000000000-\(parentID)-01", "00-\(traceID)-0000000000000000-01",
            "00-zzf7651916cd43dd8448eb211c80319c-\(parentID)-01",
            "00-\(traceID)-\(parentID)-0", "ff-\(traceID)-\(parentID)-01",
        ])
    func malformed(traceparent: String) throws {
        let context = CallTracing.context(from: ["traceparent": traceparent], using: tracer)
        let span = tracer.startSpan("root", context: context)
        defer { span.end() }
        let outgoing = CallTracing.metadata([:], carrying: span.context, using: tracer)
        let parts = try #require(outgoing["traceparent"]).split(separator: "-").map(String.init)
        #expect(parts.count == 4)
        #expect(parts[1] != Self.traceID)
        #expect(parts[1].count == 32)
    }

    @Test("no traceparent: an empty context, and nothing is injected from it")
    func absent() {
        let context = CallTracing.context(from: ["other": "value"], using: tracer)
        #expect(CallTracing.metadata([:], carrying: context, using: tracer) == [:])
    }

    @Test("while tracing is off, nothing is extracted or injected")
    func off() {
        #expect(!CallTracing.isEnabled)
        #expect(CallTracing.metadata(["a": "b"]) == ["a": "b"])
        #expect(CallTracing.context(from: ["traceparent": "00-\(Self.traceID)-\(Self.parentID)-01"]).isEmpty)
    }

    @Test("the injector and extractor write and read plain keys")
    func carrier() {
        var carrier: [String: String] = [:]
        MetadataInjector().inject("v", forKey: "traceparent", into: &carrier)
        #expect(carrier == ["traceparent": "v"])
        #expect(MetadataExtractor().extract(key: "traceparent", from: carrier) == "v")
        #expect(MetadataExtractor().extract(key: "tracestate", from: carrier) == nil)
    }
}
