import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Logging

/// `durable.v1.Node/Tail`: streams the node's object log lines and uncaught errors to one tail, as they happen.
///
/// The tail's events wait in a bounded buffer (``capacity``); when the reader falls behind, new ones are dropped
/// and the next batch says how many. The first batch is empty: it tells the reader the tail is live.
enum NodeTail {
    /// Events that may wait unsent per tail.
    static let capacity = 4_096

    static func serve(_ call: IncomingCall, runtime: ObjectRuntime, nodeID: String, logger: Logger) async throws
        -> [UInt8]
    {
        let request = try Durable_V1_NodeTailRequest(serializedBytes: call.payload)
        let filter = ObjectLogFilter(
            namespaceID: request.namespaceID.isEmpty ? nil : request.namespaceID,
            objectID: request.objectID.isEmpty ? nil : Array(request.objectID))
        let subscription = runtime.logTap.subscribe(filter, capacity: capacity)
        defer { subscription.cancel() }
        logger.info(
            "tail started",
            metadata: ["peer": "\(call.peer)", "namespace": "\(filter.namespaceID ?? "*")"])
        var sent: UInt64 = 0
        var dropped: UInt64 = 0
        do {
            try await call.stream.send(try Durable_V1_TailBatch().serializedBytes())
            while let batch = await subscription.next() {
                let message = Durable_V1_TailBatch.with {
                    $0.events = batch.events.map { TailWire.event($0, node: nodeID) }
                    $0.dropped = batch.dropped
                }
                try await call.stream.send(try message.serializedBytes())
                sent += UInt64(batch.events.count)
                dropped += batch.dropped
            }
        } catch {
            logger.debug("tail stream ended: \(error)")
        }
        logger.info("tail ended", metadata: ["peer": "\(call.peer)", "sent": "\(sent)", "dropped": "\(dropped)"])
        return try Durable_V1_TailSummary.with {
            $0.events = sent
            $0.dropped = dropped
        }.serializedBytes()
    }
}

/// The wire form of tail events.
enum TailWire {
    static func event(_ event: ObjectLogEvent, node: String) -> Durable_V1_TailEvent {
        Durable_V1_TailEvent.with {
            $0.timestampMicros = Int64(event.time.timeIntervalSince1970 * 1_000_000)
            $0.node = node
            $0.namespaceID = event.namespaceID
            $0.className = event.className
            $0.objectID = event.objectID.hexString
            $0.objectName = event.objectID.name ?? ""
            $0.kind = event.kind.rawValue
            $0.level = event.level.rawValue
            $0.message = event.message
            $0.metadata = event.metadata
            if let trigger = event.trigger {
                $0.request = Durable_V1_TailRequestInfo.with {
                    $0.event = trigger.event
                    $0.method = trigger.method ?? ""
                    $0.url = trigger.url ?? ""
                    $0.requestID = trigger.requestID ?? ""
                }
            }
        }
    }
}
