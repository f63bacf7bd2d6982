import Synchronization
import Tracing

/// Whether this process traces calls, and the W3C trace context that crosses a process boundary in a call's
/// metadata.
///
/// Tracing is off until ``enable(tracer:rootSampling:clusterAuthenticated:)`` is called, which a process does once,
/// right after it bootstrapped `InstrumentationSystem` with an exporting tracer (`--otel-endpoint`). Every hot path
/// asks ``isEnabled`` (one atomic load) before it makes a span, formats an attribute or touches a call's metadata,
/// so that a process without tracing pays nothing more than that load.
public enum CallTracing {
    private static let enabled = Atomic<Bool>(false)
    /// The bootstrapped tracer, kept once (asking `InstrumentationSystem` looks it up under a lock on every call).
    nonisolated(unsafe) private static var bootstrappedTracer: any Tracer = NoOpTracer()
    /// The decision for traces that start here.
    nonisolated(unsafe) private static var rootSampler = RootSampler(ratio: 1)
    /// Whether this process calls the cluster's other processes over connections that prove the cluster secret:
    /// its calls that are not recorded then carry no trace context to them (see ``decide(_:fromClusterPeer:)``).
    nonisolated(unsafe) private static var omitsUnsampledContext = false

    /// What a server does with a call, from its metadata (or an HTTP request's headers).
    public enum ServerDecision {
        /// Make the call's server span with this parent: the caller's sampled context, or an empty one for a trace
        /// that starts here and is recorded.
        case span(parent: InstrumentationContext)
        /// Make no span: the call is not recorded. `traceContext` holds the `traceparent` (and `tracestate`) that
        /// the calls it makes carry on: the caller's, as they came (the dictionary may hold the caller's other
        /// metadata too), or, for a trace that starts here, a fresh `traceparent` with the sampled flag off.
        case unsampled(traceContext: [String: String])
    }

    /// The decision for a call that arrives with `metadata`: a well-formed `traceparent` decides (sampled: a span
    /// under it; not: no span, its entries passed on); without one (or with a malformed one) the trace starts here
    /// and the root sampler decides, unless the caller is one of the cluster's processes.
    ///
    /// Between the cluster's processes (connections that prove the cluster secret, or in process), a call carries
    /// trace context only when its trace is recorded: a call from such a peer (`fromClusterPeer`) without a
    /// `traceparent` is one its caller does not record, and is not recorded here either. A call that is not
    /// recorded thus costs the cluster nothing on the wire and no parsing. Calls from clients, and every call in a
    /// cluster without keys (`--insecure`), carry a not-sampled trace on as W3C says: a `traceparent` with flags 00.
    ///
    /// A not-sampled `traceparent` costs no parsing beyond a check of its form: it is passed on as text, never
    /// turned into a span context.
    public static func decide(_ metadata: [String: String], fromClusterPeer: Bool = false) -> ServerDecision {
        if let traceparent = metadata[TraceContextKeys.traceparent] {
            // The plain version-00 form is read here; any other text goes to the tracer's propagator, which
            // decides whether it is well formed (it also reads later versions).
            let sampled = TraceParent.sampledFlag(of: traceparent)
            if sampled == false { return unsampled(passingOn: metadata) }
            let context = context(from: metadata, using: bootstrappedTracer)
            if !context.isEmpty {
                if sampled ?? TraceParent.lastFlagsDigitIsSampled(traceparent) { return .span(parent: context) }
                return unsampled(passingOn: metadata)
            }
        } else if fromClusterPeer {
            return .unsampled(traceContext: [:])
        }
        if rootSampler.sample() { return .span(parent: .topLevel) }
        if omitsUnsampledContext { return .unsampled(traceContext: [:]) }
        return .unsampled(traceContext: [TraceContextKeys.traceparent: rootSampler.unsampledTraceparent()])
    }

    /// A call not recorded whose caller's trace context is passed on, when this process passes such context on.
    private static func unsampled(passingOn metadata: [String: String]) -> ServerDecision {
        .unsampled(traceContext: omitsUnsampledContext ? [:] : metadata)
    }

    /// The trace context a call not recorded passes on (set by ``withUnsampledCall(traceContext:isolation:_:)``):
    /// its `traceparent` and `tracestate` go into the metadata of every call it makes, as they came.
    @TaskLocal static var unsampledTraceContext: [String: String]?

    /// Runs `operation` as a call that is not recorded: the calls it makes carry `traceContext`'s `traceparent`
    /// and `tracestate` on (``metadata(_:carrying:)``), so that every process downstream follows the decision.
    public static func withUnsampledCall<T>(
        traceContext: [String: String], isolation: isolated (any Actor)? = #isolation,
        _ operation: () async throws -> T
    ) async rethrows -> T {
        // Nothing to pass on (between the cluster's processes): nothing to set.
        if traceContext.isEmpty { return try await operation() }
        return try await $unsampledTraceContext.withValue(traceContext, operation: operation, isolation: isolation)
    }

    /// Whether spans are made and trace context is propagated in this process.
    @inline(__always)
    public static var isEnabled: Bool { enabled.load(ordering: .acquiring) }

    /// The tracer the spans are made with: the one given to ``enable(tracer:rootSampling:clusterAuthenticated:)``,
    /// else a no-op tracer.
    public static var tracer: any Tracer {
        isEnabled ? bootstrappedTracer : NoOpTracer()
    }

    /// Whether the current task serves a call whose trace is recorded (sampled): set by the server span that
    /// received the call, read by the spans inside it. A call not sampled makes its server span only (to carry its
    /// caller's decision on), and none of the spans inside, so that tracing at a low ratio costs little.
    @TaskLocal public static var isRecordingCall = false

    /// Whether the current task should make the spans inside a call: tracing is on and the call is recorded.
    @inline(__always)
    public static var recordsThisCall: Bool { isEnabled && isRecordingCall }

    /// Runs `operation` with `span` as the current span (its context is what the calls it makes carry on), and,
    /// when `span` is recorded, with ``isRecordingCall`` set.
    public static func withCurrentSpan<T>(
        _ span: any Span, isolation: isolated (any Actor)? = #isolation, _ operation: () async throws -> T
    ) async rethrows -> T {
        try await InstrumentationContext.$current.withValue(
            span.context,
            operation: {
                if span.isRecording {
                    return try await $isRecordingCall.withValue(true, operation: operation, isolation: isolation)
                }
                return try await operation()
            }, isolation: isolation)
    }

    /// The trace-context entries of `metadata` (`traceparent`, `tracestate`), to pass a caller's context on as is:
    /// `metadata` itself when it holds nothing else.
    public static func traceContext(of metadata: [String: String]) -> [String: String] {
        let traceparent = metadata[TraceContextKeys.traceparent]
        let tracestate = metadata[TraceContextKeys.tracestate]
        if metadata.count == (traceparent == nil ? 0 : 1) + (tracestate == nil ? 0 : 1) { return metadata }
        var entries: [String: String] = [:]
        entries[TraceContextKeys.traceparent] = traceparent
        entries[TraceContextKeys.tracestate] = tracestate
        return entries
    }

    /// Turns tracing on for the rest of the process's life, with `tracer` (the one `InstrumentationSystem` was
    /// bootstrapped with, which also injects and extracts the trace context). Call it once, before any call is
    /// served.
    /// `rootSampling` is the share of the traces that start here that are recorded (the tracer's own sampler must
    /// record every root and follow a caller's decision: parent-based, always on).
    /// `clusterAuthenticated`: whether this process proves the cluster secret to the cluster's other processes (a
    /// gateway or node with keys); its calls that are not recorded then carry no trace context to them.
    public static func enable(tracer: any Tracer, rootSampling: Double = 1, clusterAuthenticated: Bool = false) {
        precondition(!isEnabled, "CallTracing.enable(tracer:rootSampling:clusterAuthenticated:) is called once")
        bootstrappedTracer = tracer
        rootSampler = RootSampler(ratio: rootSampling)
        omitsUnsampledContext = clusterAuthenticated
        enabled.store(true, ordering: .releasing)
    }

    /// `metadata` with the trace context of the current call added (`traceparent`, and `tracestate` when there is
    /// one): in a call not recorded, the entries it passes on (``withUnsampledCall(traceContext:isolation:_:)``);
    /// otherwise the span context of `context`, as the bootstrapped instrument writes it. Without tracing, or
    /// without either, it is `metadata`.
    public static func metadata(
        _ metadata: [String: String] = [:], carrying context: InstrumentationContext? = .current
    ) -> [String: String] {
        guard isEnabled else { return metadata }
        if !isRecordingCall, let entries = unsampledTraceContext {
            var metadata = metadata
            metadata[TraceContextKeys.traceparent] = entries[TraceContextKeys.traceparent]
            if let tracestate = entries[TraceContextKeys.tracestate] {
                metadata[TraceContextKeys.tracestate] = tracestate
            }
            return metadata
        }
        guard let context else { return metadata }
        return Self.metadata(metadata, carrying: context, using: bootstrappedTracer)
    }

    /// `metadata` with the trace context of `context` added by `instrument`.
    public static func metadata(
        _ metadata: [String: String], carrying context: InstrumentationContext, using instrument: any Instrument
    ) -> [String: String] {
        var metadata = metadata
        instrument.inject(context, into: &metadata, using: MetadataInjector())
        return metadata
    }

    /// The context a caller's metadata carries: its trace context when it has a well-formed `traceparent`, else an
    /// empty context (a malformed one is ignored, never an error: the call starts a trace of its own).
    public static func context(from metadata: [String: String]) -> InstrumentationContext {
        guard isEnabled, metadata[TraceContextKeys.traceparent] != nil else { return .topLevel }
        return context(from: metadata, using: bootstrappedTracer)
    }

    /// The context `instrument` reads from `metadata` (empty when it carries no well-formed trace context).
    public static func context(
        from metadata: [String: String], using instrument: any Instrument
    ) -> InstrumentationContext {
        var context = InstrumentationContext.topLevel
        instrument.extract(metadata, into: &context, using: MetadataExtractor())
        return context
    }
}

/// The W3C trace-context keys (https://www.w3.org/TR/trace-context/) as they appear in call metadata and HTTP
/// headers (lowercase).
public enum TraceContextKeys {
    /// `traceparent`: version, trace id, parent span id, flags.
    public static let traceparent = "traceparent"
    /// `tracestate`: vendor-specific trace state, passed on as it came.
    public static let tracestate = "tracestate"
}

/// Writes trace context into call metadata (a `[String: String]`), one key per value.
public struct MetadataInjector: Injector {
    /// Creates an injector.
    public init() {}

    /// Sets `key` to `value` in `carrier`, replacing an earlier value.
    public func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) {
        carrier[key] = value
    }
}

/// Reads trace context from call metadata (a `[String: String]`).
public struct MetadataExtractor: Extractor {
    /// Creates an extractor.
    public init() {}

    /// The value of `key` in `carrier`, if present.
    public func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }
}
