import DurableTracing
import Tracing

/// The spans of an object's side of a call, made only while ``CallTracing/isEnabled``: the wait in the object's
/// inbound queue, its turn, and the wait for its writes to be durable. Each is a child of the task's current span
/// (the node's invocation, or the caller's span in process).
extension Activation {
    /// Starts a span about this object (its namespace, class and id as attributes); the caller ends it.
    func startSpan(_ name: String) -> any Span {
        let span = CallTracing.tracer.startSpan(name, context: InstrumentationContext.current ?? .topLevel)
        describe(span)
        return span
    }

    /// ``run(_:in:)`` in a ``SpanNames/turn`` span; an event that fails marks the span failed.
    func tracedRun(_ event: ObjectEvent, in object: any DurableObject) async -> Outcome {
        await CallTracing.tracer.withSpan(SpanNames.turn) { span in
            describe(span)
            let outcome = await run(event, in: object)
            if case .failure(let error) = outcome.result { span.recordFailure(error) }
            return outcome
        }
    }

    /// ``release(_:)`` with the wait for the output gate in a ``SpanNames/storageFlush`` span, which says whether
    /// it had to wait for a flush (its group commit) or found the writes durable already.
    func tracedRelease(_ outcome: Outcome) async throws -> EventResult {
        // A failed flush fails the span; release(_:) then answers the event and throws the same failure.
        try? await CallTracing.tracer.withSpan(SpanNames.storageFlush) { span in
            describe(span)
            if span.isRecording { span.attributes[SpanAttributeKeys.flushWaited] = !engine.isDurable(outcome.gate) }
            try await engine.waitUntilDurable(outcome.gate)
        }
        return try await release(outcome)
    }

    /// Sets the object's attributes on a recorded span (a span not sampled is left alone: formatting them would
    /// cost every call what only the sampled ones need).
    private func describe(_ span: any Span) {
        guard span.isRecording else { return }
        span.attributes[SpanAttributeKeys.namespace] = namespace.id
        span.attributes[SpanAttributeKeys.className] = namespace.className
        span.attributes[SpanAttributeKeys.objectID] = id.hexString
    }
}

extension Span {
    /// Marks the span failed with `error`: recorded, its status an error, and its code as an attribute when it is a
    /// ``DurableObjectError``.
    func recordFailure(_ error: any Error) {
        guard isRecording else { return }
        recordError(error)
        setStatus(SpanStatus(code: .error))
        if let error = error as? DurableObjectError {
            attributes[SpanAttributeKeys.statusCode] = error.code.description
        }
    }
}
