import DurableObjects
import DurableWire
import Foundation
import Logging
import SwiftProtobuf
import Synchronization

/// A client of a durable-objects node or gateway over the RPC protocol.
///
/// ```swift
/// let client = DurableClient(host: "127.0.0.1", port: 7701)
/// let counters = try await client.namespace("COUNTER")
/// let response = try await counters.getByName("a").fetch("http://counter/increment")
/// ```
///
/// It keeps a small pool of multiplexed connections, replaces a connection that closed or was told to go away,
/// applies a deadline to every call, and reports failures as `DurableObjectError` with
/// `retryable` and `overloaded` set as the server said. Safe to share across tasks.
public final class DurableClient: ObjectTransport, Sendable {
    /// The server's host.
    public let host: String
    /// The server's port.
    public let port: Int
    /// The deadline of calls that do not set one.
    public let defaultTimeout: Duration?

    private let slots: Mutex<[RPCConnection?]>
    private let next = Atomic<Int>(0)
    private let namespaces = Mutex<[String: DurableObjectNamespace]>([:])
    private let logger: Logger
    private let maximumFrameSize: Int
    private let credentials: RPCKey?

    /// Creates a client; connections open on first use.
    ///
    /// - Parameters:
    ///   - host: the server's host name or address.
    ///   - port: the server's RPC port.
    ///   - connections: how many connections to spread calls over.
    ///   - defaultTimeout: the deadline of each call, unless the call sets one.
    ///   - maximumFrameSize: the largest frame accepted from the server (16 MiB by default).
    ///   - credentials: the key each connection proves to the server: an API token for a gateway's clients, the
    ///     cluster secret between gateway and nodes; `nil` for a server that serves everyone.
    ///   - logger: where connection events are logged.
    public init(
        host: String, port: Int, connections: Int = 2, defaultTimeout: Duration? = .seconds(30),
        maximumFrameSize: Int = defaultMaximumFrameSize, credentials: RPCKey? = nil,
        logger: Logger = Logger(label: "durable.client")
    ) {
        self.host = host
        self.port = port
        self.defaultTimeout = defaultTimeout
        self.slots = Mutex(Array(repeating: nil, count: max(1, connections)))
        self.logger = logger
        self.maximumFrameSize = maximumFrameSize
        self.credentials = credentials
    }

    // MARK: Namespaces and calls

    /// The namespace bound as `binding` on the server, for deriving ids and making stubs (cached).
    ///
    /// - Throws: `NOT_FOUND` naming the binding when the server has none.
    public func namespace(_ binding: String) async throws -> DurableObjectNamespace {
        if let cached = namespaces.withLock({ $0[binding] }) { return cached }
        let response: Durable_V1_ResolveBindingResponse = try await call(
            Methods.resolveBinding, Durable_V1_ResolveBindingRequest.with { $0.binding = binding })
        guard !response.idKey.isEmpty else {
            throw DurableObjectError(.internal, "The server sent no id key for binding '\(binding)'.")
        }
        let namespace = DurableObjectNamespace(
            namespaceID: response.namespaceID, className: response.className,
            key: NamespaceKey(secret: Array(response.idKey)), transport: self)
        namespaces.withLock { $0[binding] = namespace }
        return namespace
    }

    /// Delivers `request` to the object (what `stub.fetch` does), with the default deadline.
    public func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response {
        try await invoke(namespaceID: namespaceID, id: id, request: request, timeout: defaultTimeout)
    }

    /// Delivers `request` to the object with a deadline of its own (`nil` for none) and, when routing by
    /// placement, the slot's epoch.
    public func invoke(
        namespaceID: String, id: DurableObjectId, request: Request, timeout: Duration?, epoch: UInt64 = 0
    ) async throws -> Response {
        var message = Durable_V1_InvokeRequest()
        message.namespaceID = namespaceID
        message.objectID = Data(id.bytes)
        message.objectName = id.name ?? ""
        message.placementEpoch = epoch
        message.request = request.wire
        let response: Durable_V1_InvokeResponse = try await call(Methods.invoke, message, timeout: timeout)
        return Response(wire: response.response)
    }

    /// Whether the server is serving, and its node id.
    public func health() async throws -> (nodeID: String, serving: Bool) {
        let response: Durable_V1_HealthResponse = try await call(Methods.health, Durable_V1_HealthRequest())
        return (response.nodeID, response.serving)
    }

    /// The server's counters.
    public func stats() async throws -> Durable_V1_StatsResponse {
        try await call(Methods.stats, Durable_V1_StatsRequest())
    }

    /// Calls `method` with a protobuf request and decodes the protobuf response.
    ///
    /// - Throws: `DurableObjectError` carrying the server's status.
    public func call<Response: SwiftProtobuf.Message>(
        _ method: String, _ request: some SwiftProtobuf.Message, timeout: Duration? = nil,
        metadata: [String: String] = [:]
    ) async throws -> Response {
        let reply = try await callSerialized(
            method, payload: try request.serializedBytes(), timeout: timeout, metadata: metadata)
        do {
            return try Response(serializedBytes: reply)
        } catch {
            throw DurableObjectError(.internal, "The reply to \(method) does not decode: \(error)")
        }
    }

    /// Calls `method` with an already serialized request and returns the serialized response as it came (what
    /// a relay such as the gateway needs).
    ///
    /// - Throws: `DurableObjectError` carrying the server's status.
    public func callSerialized(
        _ method: String, payload: [UInt8], timeout: Duration? = nil, metadata: [String: String] = [:]
    ) async throws -> [UInt8] {
        do {
            let connection = try await connection()
            return try await connection.call(
                method, payload: payload, metadata: metadata, timeout: timeout ?? defaultTimeout)
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
    }

    /// Calls a streaming `method` (such as `durable.v1.Admin/Tail`): `onMessage` gets each streamed message, in
    /// order, on the connection's event loop (keep it quick); the call returns the serialized final reply when the
    /// server ends the stream. Cancel the task to end it early. No deadline unless `timeout` is given.
    ///
    /// - Throws: `DurableObjectError` carrying the server's status.
    public func callStreaming(
        _ method: String, payload: [UInt8], timeout: Duration? = nil, metadata: [String: String] = [:],
        onMessage: @escaping @Sendable ([UInt8]) -> Void
    ) async throws -> [UInt8] {
        do {
            let connection = try await connection()
            return try await connection.callStreaming(
                method, payload: payload, metadata: metadata, timeout: timeout, onMessage: onMessage)
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
    }

    // MARK: Connections

    /// An open, usable connection of the pool, without waiting: `nil` when the one whose turn it is must first be
    /// opened (``callSerialized(_:payload:timeout:metadata:)`` opens it). For relays that call without a task.
    public func openConnection() -> RPCConnection? {
        let count = slots.withLock { $0.count }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue % count
        guard let existing = slots.withLock({ $0[index] }), existing.isUsable else { return nil }
        return existing
    }

    /// A usable connection, opening or replacing one when needed.
    private func connection() async throws -> RPCConnection {
        let count = slots.withLock { $0.count }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue % count
        if let existing = slots.withLock({ $0[index] }), existing.isUsable { return existing }
        let fresh = try await RPCConnection.connect(
            host: host, port: port, maximumFrameSize: maximumFrameSize, credentials: credentials, logger: logger)
        // A connection that is going away is left to finish its calls; the server closes it.
        let (chosen, unused) = slots.withLock { slots -> (RPCConnection, RPCConnection?) in
            if let current = slots[index], current.isUsable { return (current, fresh) }
            slots[index] = fresh
            return (fresh, nil)
        }
        if let unused { await unused.close() }
        return chosen
    }

    /// Closes every connection; calls in flight fail.
    public func close() async {
        let connections = slots.withLock { slots -> [RPCConnection] in
            defer { slots = slots.map { _ in nil } }
            return slots.compactMap { $0 }
        }
        for connection in connections { await connection.close() }
    }
}
