import DurableObjects
import DurableProtocol
import DurableTracing
import DurableWire
import Tracing

/// The gateway's span of a call: ``SpanNames/gatewayRoute``, from the call's arrival to the owner's answer, with
/// the object and the node it was routed to. Its context goes to the node in the call's metadata (`traceparent`),
/// so that the node's spans are its children.
extension ObjectRouter {
    /// ``relay(_:routing:id:deadline:)`` in a route span: a server span continuing the RPC caller's trace, or, for
    /// a call made in this process (a worker's binding), a child of the task's current span.
    func tracedRelay(
        _ payload: [UInt8], routing: InvokeTarget, id: DurableObjectId, deadline: ContinuousClock.Instant?,
        callerMetadata: [String: String]?, fromClusterPeer: Bool
    ) async throws -> [UInt8] {
        // A call made in this process inside a trace not recorded makes no span (its caller's context goes on).
        if callerMetadata == nil && !CallTracing.isRecordingCall {
            return try await relay(payload, routing: routing, id: id, deadline: deadline)
        }
        let parent: InstrumentationContext
        if let callerMetadata {
            switch CallTracing.decide(callerMetadata, fromClusterPeer: fromClusterPeer) {
            case .unsampled(let traceContext):
                return try await CallTracing.withUnsampledCall(traceContext: traceContext) {
                    try await relay(payload, routing: routing, id: id, deadline: deadline)
                }
            case .span(let context): parent = context
            }
        } else {
            parent = InstrumentationContext.current ?? .topLevel
        }
        let span = CallTracing.tracer.startSpan(
            SpanNames.gatewayRoute, context: parent, ofKind: callerMetadata == nil ? .internal : .server)
        defer { span.end() }
        Self.describe(span, routing: routing, id: id)
        defer { if span.isRecording { span.attributes[SpanAttributeKeys.node] = ownerNode(of: id) } }
        return try await CallTracing.withCurrentSpan(span) {
            do {
                return try await relay(payload, routing: routing, id: id, deadline: deadline)
            } catch let error as RPCError where span.isRecording {
                span.attributes[SpanAttributeKeys.statusCode] = error.code.name
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: error.message))
                throw error
            }
        }
    }

    /// The route span of a call relayed without a task (``start(_:reply:)``), and the metadata the relayed call
    /// carries: a call not recorded (its caller's decision, or the root sampler's) gets no span, only its trace
    /// context, as it came or fresh.
    func startRoute(_ call: IncomingCall, routing: InvokeTarget, id: DurableObjectId, node: String) -> (
        span: (any Span)?, metadata: [String: String]
    ) {
        switch CallTracing.decide(call.metadata, fromClusterPeer: call.callerRole == .cluster) {
        case .unsampled(let traceContext): return (nil, CallTracing.traceContext(of: traceContext))
        case .span(let parent):
            let span = startRouteSpan(parent: parent, routing: routing, id: id, node: node)
            return (span, CallTracing.metadata(carrying: span.context))
        }
    }

    /// Starts a route span under `parent`; ``end(_:with:)`` ends it.
    private func startRouteSpan(
        parent: InstrumentationContext, routing: InvokeTarget, id: DurableObjectId, node: String
    ) -> any Span {
        let span = CallTracing.tracer.startSpan(SpanNames.gatewayRoute, context: parent, ofKind: .server)
        Self.describe(span, routing: routing, id: id)
        if span.isRecording { span.attributes[SpanAttributeKeys.node] = node }
        return span
    }

    /// Ends a route span with the call's outcome.
    static func end(_ span: any Span, with result: Result<[UInt8], RPCError>) {
        if case .failure(let error) = result, span.isRecording {
            span.attributes[SpanAttributeKeys.statusCode] = error.code.name
            span.setStatus(SpanStatus(code: .error, message: error.message))
        }
        span.end()
    }

    /// Ends the span of a call that could not be relayed without a task after all (no connection was open): the
    /// call is routed again in a task, under a route span of its own.
    static func abandon(_ span: any Span) {
        span.attributes["durable.route.relayed_in_task"] = true
        span.end()
    }

    /// Sets the call's attributes on a recorded span (a span not sampled must not cost the formatting).
    private static func describe(_ span: any Span, routing: InvokeTarget, id: DurableObjectId) {
        guard span.isRecording else { return }
        span.attributes[SpanAttributeKeys.rpcMethod] = Methods.invoke
        span.attributes[SpanAttributeKeys.namespace] = routing.namespaceID
        span.attributes[SpanAttributeKeys.objectID] = id.hexString
    }

    /// The node that owns `id`'s slot now, as the placement records it.
    private func ownerNode(of id: DurableObjectId) -> String {
        placement.assignment(of: PlacementEpochs.slot(of: id))?.nodeID ?? ""
    }
}
