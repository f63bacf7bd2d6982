import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small OTLP/HTTP collector on loopback for tests: it accepts `POST /v1/traces` with the JSON encoding
/// (`--otel-protocol http/json`), answers `200 {}`, and keeps every span it was sent.
final class OTLPReceiver: Sendable {
    /// One exported span, as the receiver decoded it.
    struct ReceivedSpan: Sendable, CustomStringConvertible {
        var service: String
        var name: String
        var traceID: String
        var spanID: String
        /// `nil` for a root span.
        var parentSpanID: String?
        var kind: Int
        var start: UInt64
        var end: UInt64
        var attributes: [String: String]

        var duration: Duration { .nanoseconds(Int64(end) - Int64(start)) }
        var description: String { "\(service) \(name) \(spanID) ← \(parentSpanID ?? "root") \(duration)" }
    }

    /// The port it listens on (127.0.0.1).
    let port: Int
    private let channel: any Channel
    private let store: Store

    private init(port: Int, channel: any Channel, store: Store) {
        self.port = port
        self.channel = channel
        self.store = store
    }

    /// The collector's base URL, for `--otel-endpoint`.
    var endpoint: String { "http://127.0.0.1:\(port)" }

    /// Every span received so far.
    var spans: [ReceivedSpan] { store.spans.withLock { $0 } }

    /// What could not be decoded (expected empty).
    var decodingFailures: [String] { store.failures.withLock { $0 } }

    /// Starts listening on a port the system picks.
    static func start() async throws -> OTLPReceiver {
        let store = Store()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 16)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(RequestHandler(store: store))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return OTLPReceiver(port: channel.localAddress?.port ?? 0, channel: channel, store: store)
    }

    /// Stops listening.
    func close() async {
        try? await channel.close()
    }

    private final class Store: Sendable {
        let spans = Mutex<[ReceivedSpan]>([])
        let failures = Mutex<[String]>([])

        func take(_ body: [UInt8], path: String) {
            guard path == "/v1/traces" else {
                failures.withLock { $0.append("POST to \(path)") }
                return
            }
            do {
                let decoded = try Self.decode(Data(body))
                spans.withLock { $0.append(contentsOf: decoded) }
            } catch {
                failures.withLock { $0.append("\(error): \(String(decoding: body, as: UTF8.self))") }
            }
        }

        struct Malformed: Error { var what: String }

        /// An `ExportTraceServiceRequest` in OTLP's JSON encoding.
        static func decode(_ data: Data) throws -> [ReceivedSpan] {
            guard let root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let resourceSpans = root["resourceSpans"] as? [[String: Any]]
            else { throw Malformed(what: "no resourceSpans") }
            var result: [ReceivedSpan] = []
            for resourceSpan in resourceSpans {
                let resource = resourceSpan["resource"] as? [String: Any] ?? [:]
                let service = attributes(resource["attributes"])["service.name"] ?? ""
                for scope in resourceSpan["scopeSpans"] as? [[String: Any]] ?? [] {
                    for span in scope["spans"] as? [[String: Any]] ?? [] {
                        guard let name = span["name"] as? String, let traceID = span["traceId"] as? String,
                            let spanID = span["spanId"] as? String,
                            let start = number(span["startTimeUnixNano"]), let end = number(span["endTimeUnixNano"])
                        else { throw Malformed(what: "a span lacks a field: \(span)") }
                        let parent = (span["parentSpanId"] as? String).flatMap { $0.isEmpty ? nil : $0 }
                        result.append(
                            ReceivedSpan(
                                service: service, name: name, traceID: traceID, spanID: spanID,
                                parentSpanID: parent, kind: kind(span["kind"]), start: start, end: end,
                                attributes: attributes(span["attributes"])))
                    }
                }
            }
            return result
        }

        /// A uint64 in JSON: a string of digits (protobuf's JSON mapping) or a number.
        static func number(_ value: Any?) -> UInt64? {
            if let text = value as? String { return UInt64(text) }
            return (value as? NSNumber)?.uint64Value
        }

        /// A span kind: its number, or its enum name.
        static func kind(_ value: Any?) -> Int {
            if let number = value as? NSNumber { return number.intValue }
            let names = [
                "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4,
                "SPAN_KIND_CONSUMER": 5,
            ]
            return (value as? String).flatMap { names[$0] } ?? 0
        }

        /// OTLP key-values, each value as text.
        static func attributes(_ value: Any?) -> [String: String] {
            var result: [String: String] = [:]
            for entry in value as? [[String: Any]] ?? [] {
                guard let key = entry["key"] as? String, let value = entry["value"] as? [String: Any],
                    let first = value.first
                else { continue }
                result[key] = "\(first.value)"
            }
            return result
        }
    }

    private final class RequestHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let store: Store
        var path = ""
        var body: [UInt8] = []

        init(store: Store) {
            self.store = store
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                path = head.uri
                body = []
            case .body(var buffer):
                body += buffer.readBytes(length: buffer.readableBytes) ?? []
            case .end:
                store.take(body, path: path)
                let answer = ByteBuffer(string: "{}")
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "application/json")
                headers.add(name: "Content-Length", value: "\(answer.readableBytes)")
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))),
                    promise: nil)
                context.write(wrapOutboundOut(.body(.byteBuffer(answer))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}
