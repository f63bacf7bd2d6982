import DurableObjects
import DurableTracing
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
///
/// Given several servers (the gateways of a cluster), it uses one at a time and moves to the next when it cannot
/// connect, or when the one in use answered a call with a retryable error about itself (its connection was lost or
/// it is going away). A call that fails that way is not repeated: its error is retryable, and the next call goes to
/// the next server.
public final class DurableClient: ObjectTransport, Sendable {
    /// A server's address.
    public struct Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// The host name or address.
        public var host: String
        /// The RPC port.
        public var port: Int

        /// An address.
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Parses `host:port`; `nil` when it is not one.
        public init?(_ text: some StringProtocol) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
                (0...65535).contains(port), colon != text.startIndex
            else { return nil }
            self.init(host: String(text[..<colon]), port: port)
        }

        /// Parses a comma-separated list of `host:port`.
        ///
        /// - Throws: `DurableObjectError` (`INVALID_ARGUMENT`) naming the entry that is not `host:port`.
        public static func list(_ text: String) throws -> [Endpoint] {
            let entries = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter {
                !$0.isEmpty
            }
            guard !entries.isEmpty else { throw DurableObjectError(.invalidArgument, "No host:port address given.") }
            return try entries.map { entry in
                guard let endpoint = Endpoint(entry) else {
                    throw DurableObjectError(.invalidArgument, "'\(entry)' is not a host:port address.")
                }
                return endpoint
            }
        }

        /// `host:port`.
        public var description: String { "\(host):\(port)" }
    }

    /// The host of the server in use.
    public var host: String { endpoint.host }
    /// The port of the server in use.
    public var port: Int { endpoint.port }
    /// The server in use (the first one until a failure moves the client on).
    public var endpoint: Endpoint { state.withLock { $0.endpoints[$0.current] } }
    /// Every server the client may use, in order.
    public var endpoints: [Endpoint] { state.withLock { $0.endpoints } }
    /// The deadline of calls that do not set one.
    public let defaultTimeout: Duration?

    /// The servers and which one is in use.
    private let state: Mutex<(endpoints: [Endpoint], current: Int)>
    private let slots: Mutex<[RPCConnection?]>
    private let next = Atomic<Int>(0)
    private let namespaces = Mutex<[String: DurableObjectNamespace]>([:])
    private let logger: Logger
    private let maximumFrameSize: Int
    private let credentials: RPCKey?
    /// The TLS settings of new connections; `nil` for plaintext.
    public let tls: RPCClientTLS?

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
    ///   - tls: connect with TLS, verifying the server's certificate against its CA (and presenting a client
    ///     certificate when it holds one); `nil` for plaintext.
    ///   - logger: where connection events are logged.
    public convenience init(
        host: String, port: Int, connections: Int = 2, defaultTimeout: Duration? = .seconds(30),
        maximumFrameSize: Int = defaultMaximumFrameSize, credentials: RPCKey? = nil, tls: RPCClientTLS? = nil,
        logger: Logger = Logger(label: "durable.client")
    ) {
        self.init(
            endpoints: [Endpoint(host: host, port: port)], connections: connections, defaultTimeout: defaultTimeout,
            maximumFrameSize: maximumFrameSize, credentials: credentials, tls: tls, logger: logger)
    }

    /// Creates a client of several equivalent servers (the gateways of a cluster); connections open on first use.
    ///
    /// - Parameters:
    ///   - endpoints: the servers, in the order they are tried (at least one).
    ///   - connections: how many connections to spread calls over.
    ///   - defaultTimeout: the deadline of each call, unless the call sets one.
    ///   - maximumFrameSize: the largest frame accepted from a server (16 MiB by default).
    ///   - credentials: the key each connection proves.
    ///   - tls: connect with TLS (see `RPCClientTLS`); `nil` for plaintext.
    ///   - logger: where connection events are logged.
    public init(
        endpoints: [Endpoint], connections: Int = 2, defaultTimeout: Duration? = .seconds(30),
        maximumFrameSize: Int = defaultMaximumFrameSize, credentials: RPCKey? = nil, tls: RPCClientTLS? = nil,
        logger: Logger = Logger(label: "durable.client")
    ) {
        precondition(!endpoints.isEmpty, "a DurableClient needs at least one server")
        self.state = Mutex((endpoints, 0))
        self.defaultTimeout = defaultTimeout
        self.slots = Mutex(Array(repeating: nil, count: max(1, connections)))
        self.logger = logger
        self.maximumFrameSize = maximumFrameSize
        self.credentials = credentials
        self.tls = tls
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
        let connection: RPCConnection
        do {
            connection = try await self.connection()
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
        // The current span's trace context goes with the call, so that the server's spans join the caller's trace.
        let metadata = CallTracing.isEnabled ? CallTracing.metadata(metadata) : metadata
        do {
            return try await connection.call(
                method, payload: payload, metadata: metadata, timeout: timeout ?? defaultTimeout)
        } catch let error as RPCError {
            moveOnIfLost(connection, after: error)
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
        let connection: RPCConnection
        do {
            connection = try await self.connection()
        } catch let error as RPCError {
            throw DurableObjectError(error)
        }
        do {
            return try await connection.callStreaming(
                method, payload: payload, metadata: metadata, timeout: timeout, onMessage: onMessage)
        } catch let error as RPCError {
            moveOnIfLost(connection, after: error)
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

    /// A usable connection, opening or replacing one when needed: to the server in use, else to the next ones in
    /// turn (the first that answers becomes the server in use).
    private func connection() async throws -> RPCConnection {
        let count = slots.withLock { $0.count }
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue % count
        if let existing = slots.withLock({ $0[index] }), existing.isUsable { return existing }
        let (endpoints, start) = state.withLock { ($0.endpoints, $0.current) }
        var lastError: (any Error)?
        for offset in 0..<endpoints.count {
            let position = (start + offset) % endpoints.count
            let endpoint = endpoints[position]
            let fresh: RPCConnection
            do {
                fresh = try await RPCConnection.connect(
                    host: endpoint.host, port: endpoint.port, maximumFrameSize: maximumFrameSize,
                    credentials: credentials, tls: tls, logger: logger)
            } catch {
                lastError = error
                if endpoints.count > 1 {
                    logger.notice(
                        "server unreachable; trying the next", metadata: ["server": "\(endpoint)", "error": "\(error)"])
                }
                continue
            }
            if offset > 0 { moveOn(to: endpoint) }
            // A connection that is going away is left to finish its calls; the server closes it.
            let (chosen, unused) = slots.withLock { slots -> (RPCConnection, RPCConnection?) in
                if let current = slots[index], current.isUsable { return (current, fresh) }
                slots[index] = fresh
                return (fresh, nil)
            }
            if let unused { await unused.close() }
            return chosen
        }
        throw lastError ?? RPCError.unavailable("No server to connect to.")
    }

    /// Makes `endpoint` the server in use (when it is still one of the list).
    private func moveOn(to endpoint: Endpoint) {
        state.withLock { state in
            if let position = state.endpoints.firstIndex(of: endpoint) { state.current = position }
        }
    }

    /// After `error` on `connection`: when the connection is lost or going away and there are other servers, the
    /// next calls go to the next one, and the pool lets go of its connections to the lost server (they share its
    /// fate, whether or not they noticed yet; calls still running on them finish or fail on their own).
    private func moveOnIfLost(_ connection: RPCConnection, after error: RPCError) {
        guard error.code == .unavailable, !connection.isUsable else { return }
        let moved = state.withLock { state -> Endpoint? in
            guard state.endpoints.count > 1, state.endpoints[state.current].description == connection.address else {
                return nil
            }
            state.current = (state.current + 1) % state.endpoints.count
            return state.endpoints[state.current]
        }
        guard let moved else { return }
        slots.withLock { slots in
            for index in slots.indices where slots[index]?.address == connection.address { slots[index] = nil }
        }
        logger.notice("server lost; moving to the next", metadata: ["next": "\(moved)"])
    }

    /// Replaces the list of servers (say, the gateways alive now). Connections to servers no longer listed finish
    /// their calls and are replaced on their next use.
    ///
    /// - Parameter endpoints: the servers, in order; an empty list is ignored.
    public func setEndpoints(_ endpoints: [Endpoint]) {
        guard !endpoints.isEmpty else { return }
        let dropped = state.withLock { state -> Set<String> in
            let inUse = state.endpoints[state.current]
            let dropped = Set(state.endpoints).subtracting(endpoints).map(\.description)
            state.endpoints = endpoints
            state.current = endpoints.firstIndex(of: inUse) ?? 0
            return Set(dropped)
        }
        guard !dropped.isEmpty else { return }
        let stale = slots.withLock { slots -> [RPCConnection] in
            var stale: [RPCConnection] = []
            for index in slots.indices {
                if let connection = slots[index], dropped.contains(connection.address) {
                    stale.append(connection)
                    slots[index] = nil
                }
            }
            return stale
        }
        Task { for connection in stale { await connection.close() } }
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
