import DurableClient
import DurableObjects
import DurableProtocol
import DurableTracing
import DurableWire
import Foundation
import Synchronization

/// Routes calls to the node that owns each object's slot, with the slot's placement epoch, for RPC callers, the
/// worker's bindings and the objects' calls to each other alike. The first call to a slot without an owner assigns
/// it and announces it to the owner before anything reaches that node.
final class ObjectRouter: Sendable {
    private let registry: any RegistryStore
    let placement: any PlacementStore
    private let links: NodeLinks
    /// Slot announcements to nodes in flight, by slot.
    private let pendingAssignments = Mutex<[UInt16: Task<SlotAssignment, any Error>]>([:])
    /// The slots this gateway told their owner about (or saw told): calls to them go straight to the owner. A slot
    /// another gateway assigned is announced once more by this one before its first call here, since the owner may
    /// not have heard of it yet when this gateway sees it recorded.
    private let announced = Mutex<Set<UInt16>>([])
    /// The id key of each namespace, made once (making one absorbs the secret into an HMAC state).
    private let namespaceKeys = Mutex<[String: NamespaceKey]>([:])

    /// Calls to objects their node just reported overloaded, refused here.
    private let shedding: OverloadShedding

    init(registry: any RegistryStore, placement: any PlacementStore, links: NodeLinks, shedding: OverloadShedding) {
        self.registry = registry
        self.placement = placement
        self.links = links
        self.shedding = shedding
    }

    /// Delivers an invocation to the node that owns the object.
    ///
    /// - Throws: ``RPCError`` with the node's status, or `UNAVAILABLE` when the owner cannot be reached.
    func route(_ message: Durable_V1_InvokeRequest, deadline: ContinuousClock.Instant?) async throws
        -> Durable_V1_InvokeResponse
    {
        let reply = try await forward(try message.serializedBytes(), decoded: message, deadline: deadline)
        do {
            return try Durable_V1_InvokeResponse(serializedBytes: reply)
        } catch {
            throw RPCError(.internal, "The node's reply to an invocation does not decode: \(error)")
        }
    }

    /// Routes a serialized `InvokeRequest` and returns the owner's serialized `InvokeResponse` as it came.
    ///
    /// The request travels on as the caller sent it, with the routing fields the node needs (the object's id and
    /// the slot's epoch) appended: in protobuf's encoding the last value of a field wins, so the gateway neither
    /// re-encodes the request nor decodes the response it relays.
    ///
    /// - Parameters:
    ///   - callerMetadata: the metadata of an RPC caller (its trace context); `nil` for a call made in this process
    ///     (which continues the task's current trace).
    ///   - fromClusterPeer: whether the RPC caller proved the cluster secret (a node calling an object), which
    ///     sends trace context only for a call it records.
    func forward(
        _ payload: [UInt8], decoded: Durable_V1_InvokeRequest? = nil, deadline: ContinuousClock.Instant?,
        callerMetadata: [String: String]? = nil, fromClusterPeer: Bool = false
    ) async throws -> [UInt8] {
        let (routing, id) = try target(of: payload, decoded: decoded)
        guard CallTracing.isEnabled else {
            return try await relay(payload, routing: routing, id: id, deadline: deadline)
        }
        return try await tracedRelay(
            payload, routing: routing, id: id, deadline: deadline, callerMetadata: callerMetadata,
            fromClusterPeer: fromClusterPeer)
    }

    /// Sends a routed invocation to the object's owner and records its outcome for overload shedding.
    func relay(
        _ payload: [UInt8], routing: InvokeTarget, id: DurableObjectId, deadline: ContinuousClock.Instant?
    ) async throws -> [UInt8] {
        if let refusal = shedding.refusal(for: id.bytes) { throw refusal }
        let remaining = deadline.map { $0 - .now }
        do {
            return try await withOwner(of: id, forwarding: true) { node, epoch in
                try await node.callSerialized(
                    Methods.invoke, payload: routing.routed(payload, id: id, epoch: epoch), timeout: remaining)
            }
        } catch let error as RPCError {
            shedding.record(.failure(error), for: id.bytes)
            throw error
        }
    }

    /// Relays an invocation without a Swift task when its route is known already: the slot has an owner that
    /// knows its epoch, and a connection to that node is open. Otherwise (`nil`) the call goes through
    /// ``forward(_:decoded:deadline:)`` in a task, which can wait for those.
    func start(_ call: IncomingCall, reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void)
        -> (@Sendable () -> Void)?
    {
        guard call.method == Methods.invoke else { return nil }
        do {
            let (routing, id) = try target(of: call.payload, decoded: nil)
            if let refusal = shedding.refusal(for: id.bytes) {
                reply(.failure(refusal))
                return {}
            }
            let slot = PlacementEpochs.slot(of: id)
            guard let assignment = placement.assignment(of: slot), assignment.movingTo == nil,
                pendingAssignments.withLock({ $0[slot] == nil }), announced.withLock({ $0.contains(slot) })
            else { return nil }
            let link = try links.link(to: assignment.nodeID)
            let payload = routing.routed(call.payload, id: id, epoch: assignment.epoch)
            let started = ContinuousClock.now
            let (span, metadata) =
                CallTracing.isEnabled ? startRoute(call, routing: routing, id: id, node: assignment.nodeID) : (nil, [:])
            let cancel = link.node.start(
                Methods.invoke, payload: payload, metadata: metadata, timeout: call.deadline.map { $0 - .now }
            ) { result in
                if let span { Self.end(span, with: result) }
                if case .failure(let error) = result {
                    link.calls.record(GatewayMetrics.outcome(error), since: started)
                    self.shedding.record(result, for: id.bytes)
                } else {
                    link.calls.record(.ok, since: started)
                }
                reply(result)
            }
            if cancel == nil, let span { Self.abandon(span) }
            return cancel
        } catch {
            reply(.failure(error as? RPCError ?? RPCError(.internal, "\(error)")))
            return {}
        }
    }

    /// The object an invocation is for: its routing fields read, its namespace registered, its id valid.
    private func target(of payload: [UInt8], decoded: Durable_V1_InvokeRequest?) throws -> (
        InvokeTarget, DurableObjectId
    ) {
        let target: InvokeTarget
        if let decoded {
            target = InvokeTarget(decoded)
        } else {
            do {
                target = try InvokeTarget(scanning: payload)
            } catch {
                throw RPCError(
                    .invalidArgument, "The invocation does not decode as a durable.v1.InvokeRequest: \(error)")
            }
        }
        guard let namespace = registry.state.namespaces[target.namespaceID] else {
            throw RPCError(.notFound, "No Durable Object namespace '\(target.namespaceID)' is registered.")
        }
        let key = namespaceKeys.withLock { keys in
            if let cached = keys[target.namespaceID], cached.secret == namespace.secret { return cached }
            let key = NamespaceKey(secret: namespace.secret)
            keys[target.namespaceID] = key
            return key
        }
        let name = target.objectName.isEmpty ? nil : target.objectName
        do {
            let id =
                target.objectID.isEmpty && name != nil
                ? key.id(forName: name!) : try key.id(bytes: target.objectID, name: name)
            return (target, id)
        } catch {
            throw RPCError(serving: error)
        }
    }

    /// Runs `body` with the link to the node that owns `id` and the slot's epoch.
    ///
    /// The first call to a new slot tells the owner about it; calls to the same slot that arrive meanwhile wait for
    /// that, so that none reaches the node with an epoch it has not been given yet.
    /// - Parameter forwarding: whether `body` forwards an invocation, to be counted in the node's metrics.
    func withOwner<T>(
        of id: DurableObjectId, forwarding: Bool = false, _ body: (any NodeLink, UInt64) async throws -> T
    ) async throws -> T {
        let slot = PlacementEpochs.slot(of: id)
        var (assignment, announcement) = try ownerAnnouncing(slot)
        if let announcement {
            defer { _ = pendingAssignments.withLock { $0.removeValue(forKey: slot) } }
            // The recorded owner: another gateway may have assigned the slot first.
            assignment = try await announcement.value
        }
        let link = try links.link(to: assignment.nodeID)
        guard forwarding else { return try await body(link.node, assignment.epoch) }
        let started = ContinuousClock.now
        do {
            let result = try await body(link.node, assignment.epoch)
            link.calls.record(.ok, since: started)
            return result
        } catch {
            link.calls.record(GatewayMetrics.outcome(error), since: started)
            throw error
        }
    }

    /// The owner of `slot`, and the announcement of the slot to it when one is in flight (started here when the
    /// slot is new, or was recorded by another gateway and not announced by this one yet): a new assignment is
    /// recorded in the placement store first, then the owner is told its epoch.
    private func ownerAnnouncing(_ slot: UInt16) throws -> (
        assignment: SlotAssignment, announcement: Task<SlotAssignment, any Error>?
    ) {
        try pendingAssignments.withLock { pending -> (SlotAssignment, Task<SlotAssignment, any Error>?) in
            let (assignment, isNew): (SlotAssignment, Bool)
            do {
                (assignment, isNew) = try placement.owner(of: slot)
            } catch {
                throw RPCError(serving: error)
            }
            if let target = assignment.movingTo {
                throw RPCError.unavailable("Slot \(slot) is moving to node \(target); call again shortly.")
            }
            if !isNew {
                if let inFlight = pending[slot] { return (assignment, inFlight) }
                if announced.withLock({ $0.contains(slot) }) { return (assignment, nil) }
            }
            let (placement, links) = (self.placement, self.links)
            let task = Task<SlotAssignment, any Error> { [self] in
                var recorded = assignment
                if isNew {
                    do {
                        recorded = try await placement.record(slot)
                    } catch {
                        throw RPCError.unavailable("The gateway could not record the owner of slot \(slot): \(error)")
                    }
                }
                let request = Durable_V1_AssignSlotsRequest.with {
                    $0.assignments = [
                        .with {
                            $0.slot = UInt32(slot); $0.epoch = recorded.epoch
                        }
                    ]
                }
                let _: Durable_V1_AssignSlotsResponse = try await links.node(recorded.nodeID).call(
                    Methods.assignSlots, request)
                announced.withLock { _ = $0.insert(slot) }
                return recorded
            }
            pending[slot] = task
            return (assignment, task)
        }
    }
}

/// Calls objects from inside the gateway (the worker's bindings, the in-process nodes' objects) along the same
/// route as RPC invocations.
struct RoutingTransport: ObjectTransport {
    let router: ObjectRouter
    /// How long a call may take when the caller gives no deadline.
    var timeout: Duration

    func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response {
        var message = Durable_V1_InvokeRequest()
        message.namespaceID = namespaceID
        message.objectID = Data(id.bytes)
        message.objectName = id.name ?? ""
        message.request = request.wire
        do {
            let response = try await router.route(message, deadline: .now + timeout)
            return Response(wire: response.response)
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
    }
}
