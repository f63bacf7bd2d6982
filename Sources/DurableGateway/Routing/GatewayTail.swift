import DurableClient
import DurableObjects
import DurableWire
import Foundation
import Logging
import Synchronization

/// `durable.v1.Admin/Tail`: one live tail of the cluster's objects, relayed from every registered node.
///
/// The gateway opens a `durable.v1.Node/Tail` stream on each node, labels the events with the binding the gateway
/// knows their namespace by, and passes them on. Batches wait in a bounded buffer (``capacity``): when the reader
/// falls behind, the newest batches are dropped and their events counted in the next batch's `dropped`. Once every
/// node's stream is live, an empty batch tells the reader the tail is live.
enum GatewayTail {
    /// Batches that may wait unsent per tail.
    static let capacity = 1_024

    static func serve(
        _ call: IncomingCall, placement: any PlacementStore, links: NodeLinks, bindings workerBindings: WorkerBindings,
        logger: Logger
    ) async throws -> [UInt8] {
        let request = try Durable_V1_TailRequest(serializedBytes: call.payload)
        let nodeRequest = try nodeRequest(for: request, bindings: workerBindings)
        let bindings = bindingNames(workerBindings)
        let nodes = placement.nodes.keys.sorted()
        guard !nodes.isEmpty else {
            throw RPCError.unavailable("No storage node is registered with the gateway: nothing to tail.")
        }
        logger.info(
            "tail started",
            metadata: [
                "peer": "\(call.peer)", "binding": "\(request.binding.isEmpty ? "*" : request.binding)",
                "nodes": "\(nodes.count)",
            ])

        let (batches, sink) = AsyncStream<Durable_V1_TailBatch>.makeStream(bufferingPolicy: .bufferingOldest(capacity))
        let progress = TailProgress(nodes: nodes)
        let enqueue: @Sendable (Durable_V1_TailBatch) -> Void = { batch in
            if case .dropped = sink.yield(batch) { progress.dropped(UInt64(batch.events.count) + batch.dropped) }
        }
        let nodeIsLive: @Sendable (String) -> Void = { nodeID in
            if progress.nodeIsLive(nodeID) { enqueue(Durable_V1_TailBatch()) }
        }

        await withTaskGroup(of: Void.self) { group in
            for nodeID in nodes {
                group.addTask {
                    await follow(
                        nodeID: nodeID, request: nodeRequest, links: links, logger: logger, bindings: bindings,
                        isLive: nodeIsLive, enqueue: enqueue)
                }
            }
            // The pump: ends when the reader goes (the call is cancelled) or the stream breaks; then the nodes' tails
            // are stopped.
            for await var batch in batches {
                batch.dropped += progress.takeDropped()
                progress.sent(UInt64(batch.events.count))
                do {
                    try await call.stream.send(try batch.serializedBytes())
                } catch {
                    break
                }
            }
            sink.finish()
            group.cancelAll()
        }
        let (sent, dropped) = progress.totals
        logger.info("tail ended", metadata: ["peer": "\(call.peer)", "sent": "\(sent)", "dropped": "\(dropped)"])
        return try Durable_V1_TailSummary.with {
            $0.events = sent
            $0.dropped = dropped
        }.serializedBytes()
    }

    /// Follows one node's tail until cancelled; a node that cannot be reached is reported as an event.
    private static func follow(
        nodeID: String, request: Durable_V1_NodeTailRequest, links: NodeLinks, logger: Logger,
        bindings: [String: String],
        isLive: @escaping @Sendable (String) -> Void, enqueue: @escaping @Sendable (Durable_V1_TailBatch) -> Void
    ) async {
        let started = Atomic<Bool>(false)
        do {
            let node = try links.node(nodeID)
            _ = try await node.callStreaming(Methods.nodeTail, payload: try request.serializedBytes()) { bytes in
                guard var batch = try? Durable_V1_TailBatch(serializedBytes: bytes) else { return }
                if !started.exchange(true, ordering: .relaxed) {
                    isLive(nodeID)
                    if batch.events.isEmpty && batch.dropped == 0 { return }
                }
                for index in batch.events.indices {
                    batch.events[index].binding = bindings[batch.events[index].namespaceID] ?? ""
                }
                enqueue(batch)
            }
        } catch {
            if Task.isCancelled { return }
            logger.notice("tail of a node ended", metadata: ["node": "\(nodeID)", "error": "\(error)"])
            enqueue(
                Durable_V1_TailBatch.with {
                    $0.events = [
                        .with {
                            $0.timestampMicros = Int64(Date().timeIntervalSince1970 * 1_000_000)
                            $0.node = nodeID
                            $0.kind = "tail"
                            $0.level = "warning"
                            $0.message = "the tail of node \(nodeID) ended: \(error)"
                        }
                    ]
                })
        }
        isLive(nodeID)
    }

    /// What to ask each node for: everything, one namespace, or one object.
    private static func nodeRequest(for request: Durable_V1_TailRequest, bindings: WorkerBindings) throws
        -> Durable_V1_NodeTailRequest
    {
        guard !request.binding.isEmpty else {
            guard request.object.isEmpty else {
                throw RPCError(.invalidArgument, "Tailing one object needs its binding too (--binding).")
            }
            return Durable_V1_NodeTailRequest()
        }
        let namespace = try bindings.resolve(.with { $0.binding = request.binding })
        var nodeRequest = Durable_V1_NodeTailRequest.with { $0.namespaceID = namespace.namespaceID }
        if !request.object.isEmpty {
            let key = NamespaceKey(secret: Array(namespace.idKey))
            let id: DurableObjectId
            if request.object.count == 64, request.object.allSatisfy(\.isHexDigit) {
                do {
                    id = try key.id(fromString: request.object.lowercased())
                } catch {
                    throw RPCError(
                        .invalidArgument, "'\(request.object)' is not an id of binding \(request.binding): \(error)")
                }
            } else {
                id = key.id(forName: request.object)
            }
            nodeRequest.objectID = Data(id.bytes)
        }
        return nodeRequest
    }

    /// Namespace id → the binding names of the served script that point at it.
    private static func bindingNames(_ bindings: WorkerBindings) -> [String: String] {
        let environment = bindings.workerEnvironment()
        var names: [String: [String]] = [:]
        for (binding, namespace) in environment.namespaces {
            names[namespace.namespaceID, default: []].append(binding)
        }
        return names.mapValues { $0.sorted().joined(separator: ",") }
    }
}

/// The counts of one tail at the gateway: nodes not yet live, events sent and dropped.
private final class TailProgress: Sendable {
    private struct State {
        var waiting: Set<String>
        var droppedUnreported: UInt64 = 0
        var droppedTotal: UInt64 = 0
        var sentTotal: UInt64 = 0
    }

    private let state: Mutex<State>

    init(nodes: [String]) {
        state = Mutex(State(waiting: Set(nodes)))
    }

    /// Marks a node's stream live; returns whether it was the last one.
    func nodeIsLive(_ nodeID: String) -> Bool {
        state.withLock { state in
            guard state.waiting.remove(nodeID) != nil else { return false }
            return state.waiting.isEmpty
        }
    }

    func dropped(_ count: UInt64) {
        state.withLock {
            $0.droppedUnreported += count
            $0.droppedTotal += count
        }
    }

    /// The drops not reported yet (reported by the caller from now on).
    func takeDropped() -> UInt64 {
        state.withLock { state in
            defer { state.droppedUnreported = 0 }
            return state.droppedUnreported
        }
    }

    func sent(_ count: UInt64) {
        state.withLock { $0.sentTotal += count }
    }

    var totals: (sent: UInt64, dropped: UInt64) { state.withLock { ($0.sentTotal, $0.droppedTotal) } }
}
