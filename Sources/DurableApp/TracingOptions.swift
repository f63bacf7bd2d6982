import ArgumentParser
import DurableTracing
import Foundation
import Logging
import OTel
import ServiceLifecycle
import Tracing

/// `--otel-endpoint` and `--trace-sampling`: where a server process exports its spans (OTLP over HTTP), and which
/// share of the traces it starts it keeps. Without an endpoint nothing is traced and nothing is exported.
struct TracingOptions: ParsableArguments {
    @Option(
        name: .customLong("otel-endpoint"),
        help: ArgumentHelp(
            "Export spans over OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318 (spans go to /v1/traces). Off by default.",
            valueName: "url"))
    var otelEndpoint: String?

    @Option(
        name: .customLong("trace-sampling"),
        help: ArgumentHelp(
            "The share of traces started here that are recorded, 0 to 1 (default 1 with --otel-endpoint). A call that arrives with a traceparent follows its caller's decision.",
            valueName: "ratio"))
    var traceSampling: Double?

    @Option(
        name: .customLong("otel-protocol"),
        help: ArgumentHelp(
            "How spans are encoded: http/protobuf or http/json.", valueName: "protocol", visibility: .hidden))
    var otelProtocol: String = "http/protobuf"

    func validate() throws {
        if let traceSampling {
            guard otelEndpoint != nil else { throw ValidationError("--trace-sampling needs --otel-endpoint") }
            guard traceSampling.isFinite, (0...1).contains(traceSampling) else {
                throw ValidationError("--trace-sampling must be a ratio between 0 and 1, got \(traceSampling)")
            }
        }
        if let otelEndpoint {
            guard let url = URL(string: otelEndpoint), let scheme = url.scheme?.lowercased(),
                scheme == "http" || scheme == "https", url.host != nil
            else {
                throw ValidationError("--otel-endpoint must be an http:// or https:// URL, got '\(otelEndpoint)'")
            }
        }
        guard ["http/protobuf", "http/json"].contains(otelProtocol) else {
            throw ValidationError("--otel-protocol must be http/protobuf or http/json")
        }
    }

    /// The URL spans are posted to: the endpoint with `/v1/traces` appended unless it ends with it already.
    var tracesURL: String? {
        guard let otelEndpoint else { return nil }
        if otelEndpoint.hasSuffix("/v1/traces") { return otelEndpoint }
        return (otelEndpoint.hasSuffix("/") ? String(otelEndpoint.dropLast()) : otelEndpoint) + "/v1/traces"
    }

    /// Bootstraps `InstrumentationSystem` with an OTLP/HTTP exporting tracer and turns ``CallTracing`` on, when an
    /// endpoint is given; returns the exporter's service, which the process runs first in its service group (so that
    /// it stops last and flushes the spans of the shutdown). Without an endpoint: `nil`, and nothing changes.
    ///
    /// Call it once per process, before anything makes a span. `clusterAuthenticated`: whether the process proves
    /// the cluster secret to the cluster's other processes (then its calls that are not recorded carry no trace
    /// context to them, and theirs none to it).
    func bootstrap(serviceName: String, clusterAuthenticated: Bool, logger: Logger) throws -> (any Service)? {
        guard let url = tracesURL else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = serviceName
        configuration.diagnosticLogger = .custom(logger)
        // Errors only: a warning per malformed traceparent a client sends would let any client flood the log.
        configuration.diagnosticLogLevel = .error
        configuration.propagators = [.traceContext]
        configuration.metrics.enabled = false
        configuration.logs.enabled = false
        configuration.traces.exporter = .otlp
        configuration.traces.otlpExporter.endpoint = url
        configuration.traces.otlpExporter.protocol = otelProtocol == "http/json" ? .httpJSON : .httpProtobuf
        // Parent-based: a call that carries a sampled (or unsampled) traceparent follows its caller, so one request
        // is traced in every process or in none. The ratio for traces that start here is applied by CallTracing
        // before any span is made (a trace not sampled then costs no span); what reaches the tracer is recorded.
        configuration.traces.sampler = .parentBasedAlwaysOn
        let backend = try OTel.makeTracingBackend(configuration: configuration)
        InstrumentationSystem.bootstrap(backend.factory)
        CallTracing.enable(
            tracer: backend.factory, rootSampling: traceSampling ?? 1, clusterAuthenticated: clusterAuthenticated)
        logger.info(
            "tracing: exporting spans over OTLP/HTTP",
            metadata: ["endpoint": "\(url)", "sampling": "\(traceSampling ?? 1)"])
        return backend.service
    }
}
