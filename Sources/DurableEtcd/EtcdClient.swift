import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOSSL
import Synchronization

/// A client of etcd's v3 API (etcd 3.4 and later) through its JSON gateway: keys and values, transactions, leases
/// and watches, over HTTP to one of several endpoints.
///
/// Every call goes to the endpoint that answered last; when it cannot be reached (within a one-second connect
/// timeout), the call moves on to the next endpoint (each at most once per call), so a cluster of three members keeps
/// answering while one is down.
/// Keys and values are bytes; etcd orders keys by their bytes.
public final class EtcdClient: Sendable {
    /// The member URLs, e.g. `http://127.0.0.1:2379`.
    public let endpoints: [String]
    private let http: HTTPClient
    private let ownsHTTPClient: Bool
    private let requestTimeout: TimeAmount
    private let logger: Logger
    /// The index of the endpoint calls go to first.
    private let preferred = Atomic<Int>(0)

    /// Creates a client of the members at `endpoints` (`http://HOST:PORT`, comma-separated lists are split).
    ///
    /// - Parameter requestTimeout: how long one call may take at one endpoint before the next is tried.
    /// - Parameter tls: the TLS settings of `https://` endpoints (the CA that signs etcd's certificate, and a client
    ///   certificate when etcd asks for one); `nil` uses the system's trust store and presents none.
    /// - Throws: ``EtcdError`` when no endpoint is given or one is not an `http://` or `https://` URL.
    public init(
        endpoints: [String], requestTimeout: Duration = .seconds(3), tls: TLSConfiguration? = nil,
        logger: Logger = Logger(label: "durable.etcd")
    ) throws {
        let list = endpoints.flatMap { $0.split(separator: ",") }.map {
            String($0.trimmingCharacters(in: .whitespaces).trimmingSuffix("/"))
        }.filter { !$0.isEmpty }
        guard !list.isEmpty else { throw EtcdError(message: "No etcd endpoint given.") }
        for endpoint in list where !(endpoint.hasPrefix("http://") || endpoint.hasPrefix("https://")) {
            throw EtcdError(message: "The etcd endpoint '\(endpoint)' is not an http:// or https:// URL.")
        }
        self.endpoints = list
        // A member that is down costs at most the connect timeout before the call moves on to the next one (the
        // client retries a refused connection until then).
        var configuration = HTTPClient.Configuration()
        configuration.timeout.connect = .seconds(1)
        if let tls { configuration.tlsConfiguration = tls }
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        self.ownsHTTPClient = true
        let (seconds, attoseconds) = requestTimeout.components
        self.requestTimeout = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        self.logger = logger
    }

    /// Closes the client's connections.
    public func close() async {
        if ownsHTTPClient { try? await http.shutdown() }
    }

    // MARK: Keys

    /// The value of `key` with its revisions, or `nil` when there is none.
    public func get(_ key: [UInt8]) async throws -> KeyValue? {
        let reply: RangeReply = try await call("/v3/kv/range", RangeRequest(key: key, rangeEnd: nil))
        return reply.kvs?.first.map(KeyValue.init)
    }

    /// Every key that starts with `prefix`, in key order, and the store's revision they were read at.
    public func get(prefix: [UInt8]) async throws -> (values: [KeyValue], revision: Int64) {
        let reply: RangeReply = try await call(
            "/v3/kv/range", RangeRequest(key: prefix, rangeEnd: Self.rangeEnd(ofPrefix: prefix)))
        return ((reply.kvs ?? []).map(KeyValue.init), reply.header?.revision?.value ?? 0)
    }

    /// Sets `key` to `value`, attached to `lease` when given (the key goes when the lease expires). Returns the
    /// store's revision after the write.
    @discardableResult
    public func put(_ key: [UInt8], _ value: [UInt8], lease: Int64? = nil) async throws -> Int64 {
        let reply: HeaderReply = try await call(
            "/v3/kv/put", PutRequest(key: key, value: value, lease: lease.map(EtcdInt.init)))
        return reply.header?.revision?.value ?? 0
    }

    /// Deletes `key`; returns how many keys were deleted (0 or 1).
    @discardableResult
    public func delete(_ key: [UInt8]) async throws -> Int64 {
        let reply: DeleteReply = try await call("/v3/kv/deleterange", RangeRequest(key: key, rangeEnd: nil))
        return reply.deleted?.value ?? 0
    }

    /// Deletes every key that starts with `prefix`; returns how many were deleted.
    @discardableResult
    public func delete(prefix: [UInt8]) async throws -> Int64 {
        let reply: DeleteReply = try await call(
            "/v3/kv/deleterange", RangeRequest(key: prefix, rangeEnd: Self.rangeEnd(ofPrefix: prefix)))
        return reply.deleted?.value ?? 0
    }

    /// Runs a transaction: when every comparison holds, the `success` operations, else the `failure` ones, as one
    /// atomic, linearizable step.
    public func transaction(_ transaction: Transaction) async throws -> TransactionResult {
        let reply: TransactionReply = try await call("/v3/kv/txn", TransactionRequest(transaction))
        return TransactionResult(
            succeeded: reply.succeeded ?? false, revision: reply.header?.revision?.value ?? 0,
            responses: (reply.responses ?? []).map(TransactionResult.Response.init))
    }

    // MARK: Leases

    /// Grants a lease of `ttl` seconds; returns its id and the TTL etcd gave.
    public func grantLease(ttl: Int) async throws -> (id: Int64, ttl: Int64) {
        let reply: LeaseGrantReply = try await call("/v3/lease/grant", LeaseGrantRequest(TTL: EtcdInt(Int64(ttl))))
        if let error = reply.error, !error.isEmpty { throw EtcdError(message: "etcd refused a lease: \(error)") }
        return (reply.ID?.value ?? 0, reply.TTL?.value ?? 0)
    }

    /// Renews lease `id` for its whole TTL; returns the TTL left, 0 or less when the lease had expired already
    /// (its keys are gone).
    public func keepAlive(lease id: Int64) async throws -> Int64 {
        let reply: LeaseKeepAliveEnvelope = try await call("/v3/lease/keepalive", LeaseIDRequest(ID: EtcdInt(id)))
        return reply.result?.TTL?.value ?? 0
    }

    /// The seconds left on lease `id` and the TTL it was granted with; `nil` when it expired or never existed.
    public func timeToLive(lease id: Int64) async throws -> (remaining: Int64, granted: Int64)? {
        let reply: LeaseTimeToLiveReply = try await call("/v3/lease/timetolive", LeaseIDRequest(ID: EtcdInt(id)))
        guard let remaining = reply.TTL?.value, remaining >= 0 else { return nil }
        return (remaining, reply.grantedTTL?.value ?? 0)
    }

    /// Revokes lease `id`: its keys are deleted now.
    public func revoke(lease id: Int64) async throws {
        let _: HeaderReply = try await call("/v3/lease/revoke", LeaseIDRequest(ID: EtcdInt(id)))
    }

    // MARK: Members

    /// The status of the member at `endpoint` (one of ``endpoints``): its id and the leader it follows.
    ///
    /// - Throws: ``EtcdError`` (`unreachable`) when that member does not answer.
    public func status(of endpoint: String) async throws -> MemberStatus {
        let reply: StatusReply = try await call("/v3/maintenance/status", EmptyRequest(), only: endpoint)
        return MemberStatus(
            endpoint: endpoint, memberID: reply.header?.member_id ?? "", leader: reply.leader ?? "",
            version: reply.version ?? "", revision: reply.header?.revision?.value ?? 0)
    }

    // MARK: Watches

    /// The changes to keys under `prefix` from revision `start` on (every change after `start - 1`), in order,
    /// batch by batch, until the task is cancelled or the endpoint goes away (the stream then throws; watch again
    /// from the revision after the last one seen).
    public func watch(prefix: [UInt8], fromRevision start: Int64) -> AsyncThrowingStream<[WatchEvent], any Error> {
        let (stream, continuation) = AsyncThrowingStream.makeStream(of: [WatchEvent].self)
        let task = Task { [self] in
            do {
                try await streamWatch(prefix: prefix, start: start) { events in continuation.yield(events) }
                continuation.finish(throwing: EtcdError(message: "The etcd watch ended."))
            } catch {
                continuation.finish(throwing: error)
            }
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }

    private func streamWatch(prefix: [UInt8], start: Int64, _ deliver: ([WatchEvent]) -> Void) async throws {
        let body = WatchRequest(
            create_request: .init(
                key: prefix, range_end: Self.rangeEnd(ofPrefix: prefix), start_revision: EtcdInt(start)))
        let endpoint = endpoints[preferred.load(ordering: .relaxed) % endpoints.count]
        let request = Self.post(endpoint + "/v3/watch", try JSONEncoder().encode(body))
        let response = try await http.execute(request, timeout: .hours(24 * 365))
        guard response.status == .ok else {
            throw EtcdError(message: "etcd at \(endpoint) refused the watch: HTTP \(response.status.code)")
        }
        // The gateway streams one JSON object per watch response, separated by newlines.
        var pending: [UInt8] = []
        let decoder = JSONDecoder()
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                guard !line.isEmpty else { continue }
                let envelope = try decoder.decode(WatchEnvelope.self, from: Data(line))
                if let error = envelope.error {
                    throw EtcdError(message: "The etcd watch failed: \(error.message ?? "unknown error")")
                }
                guard let result = envelope.result else { continue }
                if result.canceled == true {
                    throw EtcdError(
                        message: "etcd cancelled the watch: \(result.cancel_reason ?? "")"
                            + (result.compact_revision.map { " (compacted at revision \($0.value))" } ?? ""))
                }
                let events = (result.events ?? []).map(WatchEvent.init)
                if !events.isEmpty { deliver(events) }
            }
        }
    }

    // MARK: Calls

    /// Posts `body` as JSON to `path` on the preferred endpoint, moving on to the next ones when it cannot be
    /// reached (or only to `only`), and decodes the reply.
    private func call<Reply: Decodable>(_ path: String, _ body: some Encodable, only: String? = nil) async throws
        -> Reply
    {
        let payload = try JSONEncoder().encode(body)
        let endpoints = only.map { [$0] } ?? self.endpoints
        let first = only == nil ? preferred.load(ordering: .relaxed) : 0
        var failures: [String] = []
        for attempt in 0..<endpoints.count {
            let index = (first + attempt) % endpoints.count
            let endpoint = endpoints[index]
            let request = Self.post(endpoint + path, payload)
            let bytes: ByteBuffer
            let status: HTTPResponseStatus
            do {
                let response = try await http.execute(request, timeout: requestTimeout)
                status = response.status
                bytes = try await response.body.collect(upTo: 64 << 20)
            } catch {
                if Task.isCancelled { throw CancellationError() }
                failures.append("\(endpoint): \(error)")
                logger.debug("etcd endpoint unreachable", metadata: ["endpoint": "\(endpoint)", "error": "\(error)"])
                continue
            }
            if only == nil, index != first { preferred.store(index, ordering: .relaxed) }
            let data = Data(bytes.readableBytesView)
            guard status == .ok else {
                let detail = (try? JSONDecoder().decode(ErrorReply.self, from: data))?.message
                throw EtcdError(
                    message: "etcd at \(endpoint) answered \(path) with HTTP \(status.code): "
                        + (detail ?? String(decoding: data, as: UTF8.self)))
            }
            do {
                return try JSONDecoder().decode(Reply.self, from: data)
            } catch {
                throw EtcdError(message: "etcd's reply to \(path) does not decode: \(error)")
            }
        }
        throw EtcdError(
            message: "No etcd endpoint answered (\(endpoints.joined(separator: ", "))): "
                + failures.joined(separator: "; "),
            unreachable: true)
    }

    /// A POST of the JSON `body` to `url`.
    private static func post(_ url: String, _ body: Data) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }

    /// The end of the key range of every key that starts with `prefix`: the prefix with its last byte below 0xFF
    /// raised by one (and what follows dropped); `[0]` (every key) for an empty or all-0xFF prefix.
    static func rangeEnd(ofPrefix prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]
    }
}

/// An error from etcd or from reaching it.
public struct EtcdError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, naming the endpoint when one answered.
    public var message: String
    /// No endpoint could be reached (as opposed to etcd refusing the call).
    public var unreachable = false

    /// An error with `message`; `unreachable` when no endpoint could be reached.
    public init(message: String, unreachable: Bool = false) {
        self.message = message
        self.unreachable = unreachable
    }

    /// The message.
    public var description: String { message }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> Substring {
        hasSuffix(suffix) ? dropLast(suffix.count) : Substring(self)
    }
}
