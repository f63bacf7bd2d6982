import DurableTracing
import Tracing

extension ObjectRuntime {
    /// ``deliver(_:namespaceID:id:deadline:metrics:)`` for a call whose trace is recorded: the same steps, with a
    /// span for the wait in the object's queue (from admission until its turn), one for the turn, and one for the
    /// output gate (the flush its answer waits for). Kept apart so that an untraced call runs exactly the plain loop.
    func tracedDeliver(
        _ event: ObjectEvent, namespaceID: String, id: DurableObjectId, deadline: ContinuousClock.Instant?,
        metrics: inout NamespaceMetrics?
    ) async throws -> EventResult {
        while true {
            let (activation, namespaceMetrics) = try activation(namespaceID: namespaceID, id: id)
            metrics = namespaceMetrics
            let queueWait = activation.startSpan(SpanNames.queueWait)
            let admitted: Activation.Ticket?
            do {
                admitted = try activation.enqueue(bytes: event.bodyBytes, deadline: deadline)
            } catch {
                queueWait.recordFailure(error)
                queueWait.end()
                throw error
            }
            guard let ticket = admitted else {
                queueWait.end()
                continue
            }
            let outcome = try await withTaskExecutorPreference(activation.executor) {
                () async throws -> Activation.Outcome? in
                let admission: Activation.Admission
                do {
                    admission = try await activation.awaitDelivery(ticket)
                } catch {
                    queueWait.recordFailure(error)
                    queueWait.end()
                    throw error
                }
                queueWait.end()
                switch admission {
                case .retry: return nil
                case .delivered(let object): return await activation.tracedRun(event, in: object)
                }
            }
            if let outcome { return try await activation.tracedRelease(outcome) }
        }
    }
}
