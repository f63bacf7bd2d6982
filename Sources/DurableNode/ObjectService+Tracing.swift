import DurableObjects
import DurableProtocol
import DurableTracing
import DurableWire
import Foundation
import Tracing

extension ObjectService {
    /// Serves an invocation in a ``SpanNames/nodeInvoke`` server span that continues the trace of the call's
    /// `traceparent` (from the gateway, or from any client that sends one); the runtime's spans (queue wait, turn,
    /// flush) are its children when the trace is recorded.
    func tracedInvoke(_ call: IncomingCall) async throws -> [UInt8] {
        let message = try Durable_V1_InvokeRequest(serializedBytes: call.payload)
        let parent: InstrumentationContext
        switch CallTracing.decide(call.metadata, fromClusterPeer: call.callerRole == .cluster) {
        case .unsampled(let traceContext):
            return try await CallTracing.withUnsampledCall(traceContext: traceContext) {
                try await invoke(message, deadline: call.deadline)
            }
        case .span(let context): parent = context
        }
        let span = CallTracing.tracer.startSpan(SpanNames.nodeInvoke, context: parent, ofKind: .server)
        defer { span.end() }
        return try await CallTracing.withCurrentSpan(span) {
            // Attributes only on a recorded span: a span not sampled must not cost the formatting.
            if span.isRecording {
                span.attributes[SpanAttributeKeys.rpcMethod] = call.method
                span.attributes[SpanAttributeKeys.node] = nodeID
                span.attributes[SpanAttributeKeys.namespace] = message.namespaceID
                if let className = runtime.namespaceDefinition(message.namespaceID)?.className {
                    span.attributes[SpanAttributeKeys.className] = className
                }
                span.attributes[SpanAttributeKeys.objectID] =
                    message.objectID.isEmpty ? message.objectName : DurableObjectId.hexString(of: message.objectID)
            }
            do {
                return try await invoke(message, deadline: call.deadline)
            } catch let error as RPCError where span.isRecording {
                span.attributes[SpanAttributeKeys.statusCode] = error.code.name
                span.recordError(error)
                span.setStatus(SpanStatus(code: .error, message: error.message))
                throw error
            }
        }
    }
}
