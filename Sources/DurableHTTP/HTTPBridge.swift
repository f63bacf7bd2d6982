import DurableObjects
import DurableTracing
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle
import Tracing

/// How the HTTP bridge listens.
public struct HTTPBridgeConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The port (0 picks a free one).
    public var port: Int
    /// The largest request body accepted (larger ones are answered `413 Content Too Large`).
    public var maximumBodySize: Int
    /// The largest WebSocket message a client may send (larger ones close the socket with 1009 and the reason).
    public var maximumWebSocketMessageSize: Int
    /// The limits on request headers (over them: `431 Request Header Fields Too Large`, and the connection closes).
    public var headerLimits: HTTPHeaderLimits
    /// How long a kept-alive connection may wait idle between requests before it is closed.
    public var idleTimeout: Duration
    /// Serve HTTPS with this configuration (and WebSockets as `wss:`); `nil` serves plain HTTP.
    public var tls: TLSConfiguration?

    /// Creates a configuration.
    public init(
        host: String = "127.0.0.1", port: Int, maximumBodySize: Int = 32 * 1024 * 1024,
        maximumWebSocketMessageSize: Int = WebSocketLimits.defaultMaximumMessageSize,
        headerLimits: HTTPHeaderLimits = HTTPHeaderLimits(), idleTimeout: Duration = .seconds(75)
    ) {
        self.host = host
        self.port = port
        self.maximumBodySize = maximumBodySize
        self.maximumWebSocketMessageSize = maximumWebSocketMessageSize
        self.headerLimits = headerLimits
        self.idleTimeout = idleTimeout
    }
}

/// Serves the app's worker over HTTP (Hummingbird 2): every request becomes a ``DurableObjects/Request`` carrying
/// `CF-Connecting-IP` and `X-Forwarded-For`, goes to the worker with the current environment of bindings, and the
/// worker's response or error goes back as HTTP (see ``HTTPErrorMapping``).
public final class HTTPBridge: Service, Sendable {
    /// The configuration.
    public let configuration: HTTPBridgeConfiguration
    private let worker: Worker
    private let environment: @Sendable () -> DurableObjects.Environment
    private let logger: Logger
    private let onStarted: @Sendable (Int) async -> Void
    private let upgrades: WebSocketUpgrades?

    /// Creates a bridge.
    ///
    /// - Parameters:
    ///   - environment: gives the bindings for each request (they change when a configuration is published).
    ///   - webSockets: where accepted WebSockets go (`nil`: upgrade requests are plain requests).
    ///   - onStarted: called with the bound port once the server listens.
    public init(
        configuration: HTTPBridgeConfiguration, worker: Worker,
        environment: @escaping @Sendable () -> DurableObjects.Environment, webSockets: (any WebSocketRelay)? = nil,
        logger: Logger = Logger(label: "durable.http"), onStarted: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.worker = worker
        self.environment = environment
        self.logger = logger
        self.onStarted = onStarted
        upgrades = webSockets.map {
            WebSocketUpgrades(relay: $0, maximumMessageSize: configuration.maximumWebSocketMessageSize, logger: logger)
        }
    }

    /// Serves until graceful shutdown.
    public func run() async throws {
        let responder = CallbackResponder<BridgeContext> { [self] request, context in
            try await self.respond(to: request, context: context)
        }
        let onStarted = self.onStarted
        let limits = configuration.headerLimits
        var http1 = HTTP1Channel.Configuration(idleTimeout: TimeAmount(configuration.idleTimeout))
        http1.httpDecoder = .init(
            maxHeaderFieldSize: limits.maximumFieldSize, maxHeaderListSize: limits.maximumListSize,
            maxHeaderFieldCount: limits.maximumFieldCount)
        var server = HTTPServerBuilder.http1(configuration: http1)
        if let upgrades {
            let channelConfiguration = HTTP1WebSocketUpgradeChannel.Configuration(
                http1: http1, ws: .init(maxFrameSize: upgrades.maximumFrameSize))
            server = HTTPServerBuilder { [self] responder in
                AnsweringParseErrors(
                    inner: HTTP1WebSocketUpgradeChannel(responder: responder, configuration: channelConfiguration) {
                        head, channel, _ in
                        await upgrades.shouldUpgrade(head: head, channel: channel) { request in
                            await self.answer(request)
                        }
                    }, limits: limits)
            }
        }
        if let tls = configuration.tls {
            server = try HTTPServerBuilder.tls(server, tlsConfiguration: tls)
        }
        let application = Application(
            responder: responder,
            server: server,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "durable"),
            onServerRunning: { channel in await onStarted(channel.localAddress?.port ?? 0) },
            logger: logger)
        try await application.run()
    }

    /// The request head as the worker sees it: `CF-Connecting-IP` is the caller's address (a client cannot choose
    /// it) and `X-Forwarded-For` gains the hop. A client's own `X-Durable-WebSocket-Id` is dropped unless the
    /// bridge set it.
    static func forwarded(_ head: HTTPRequest, remote: SocketAddress?, keepSocketID: Bool = true) -> HTTPRequest {
        var head = head
        let ip = remote?.ipAddress ?? "127.0.0.1"
        head.headerFields[HTTPField.Name.cfConnectingIP] = ip
        let forwardedFor = head.headerFields[HTTPField.Name.xForwardedFor].map { "\($0), \(ip)" } ?? ip
        head.headerFields[HTTPField.Name.xForwardedFor] = forwardedFor
        if !keepSocketID { head.headerFields[WebSocketLimits.socketIDHeader] = nil }
        return head
    }

    /// Runs the worker; errors become responses.
    func answer(_ incoming: DurableObjects.Request) async -> DurableObjects.Response {
        let answer: DurableObjects.Response
        do {
            answer = try await worker.fetch(incoming, environment())
        } catch {
            answer = HTTPErrorMapping.response(for: error)
            logger.log(
                level: answer.status.code >= 500 && answer.status != .serviceUnavailable ? .error : .debug,
                "worker failed",
                metadata: ["path": "\(incoming.path)", "status": "\(answer.status.code)", "error": "\(error)"])
        }
        logger.trace("\(incoming.method) \(incoming.path) → \(answer.status.code)")
        return answer
    }

    /// ``answer(_:)`` in a server span that continues the caller's trace when the request carries a `traceparent`.
    private func tracedAnswer(_ incoming: DurableObjects.Request) async -> DurableObjects.Response {
        var carrier: [String: String] = [:]
        carrier[TraceContextKeys.traceparent] = incoming.head.headerFields[.traceparent]
        carrier[TraceContextKeys.tracestate] = incoming.head.headerFields[.tracestate]
        let method = incoming.head.method.rawValue
        let parent: InstrumentationContext
        switch CallTracing.decide(carrier) {
        case .unsampled(let traceContext):
            return await CallTracing.withUnsampledCall(traceContext: traceContext) {
                await self.answer(incoming)
            }
        case .span(let context): parent = context
        }
        let span = CallTracing.tracer.startSpan(SpanNames.http(method: method), context: parent, ofKind: .server)
        defer { span.end() }
        let answer = await CallTracing.withCurrentSpan(span) { await self.answer(incoming) }
        if span.isRecording {
            span.attributes[SpanAttributeKeys.httpMethod] = method
            span.attributes[SpanAttributeKeys.urlPath] = incoming.path
            span.attributes[SpanAttributeKeys.httpStatus] = answer.status.code
            if answer.status.code >= 500 { span.setStatus(SpanStatus(code: .error)) }
        }
        return answer
    }

    private func respond(to request: Hummingbird.Request, context: BridgeContext) async throws -> Hummingbird.Response {
        let answer: DurableObjects.Response
        if let refusal = upgrades?.takeRefusal(for: context.channel) {
            answer = refusal
        } else {
            let head = Self.forwarded(request.head, remote: context.remoteAddress, keepSocketID: false)
            let buffer: ByteBuffer
            do {
                buffer = try await request.body.collect(upTo: configuration.maximumBodySize)
            } catch is NIOTooManyBytesError {
                return Hummingbird.Response(
                    status: .contentTooLarge, headers: [.contentType: "text/plain; charset=utf-8"],
                    body: ResponseBody(
                        byteBuffer: ByteBuffer(
                            string: "The request body is over the limit of \(configuration.maximumBodySize) bytes.")))
            }
            let incoming = DurableObjects.Request(head: head, body: Array(buffer: buffer))
            answer = CallTracing.isEnabled ? await tracedAnswer(incoming) : await self.answer(incoming)
        }
        return Hummingbird.Response(
            status: answer.head.status, headers: answer.head.headerFields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }
}

/// How errors that reach the bridge become HTTP responses: one status per code, the error's message as the body.
public enum HTTPErrorMapping {
    /// The HTTP status of each code, for an error that came back from an object (``DurableObjectError/remote``).
    public static let statuses: [DurableObjectError.Code: Int] = [
        .invalidArgument: 400, .outOfRange: 400, .failedPrecondition: 400,
        .unauthenticated: 401,
        .permissionDenied: 403,
        .notFound: 404,
        .alreadyExists: 409, .aborted: 409,
        .resourceExhausted: 503,
        .cancelled: 499,
        .unknown: 500, .internal: 500, .dataLoss: 500,
        .unimplemented: 501,
        .unavailable: 503,
        .deadlineExceeded: 504,
    ]

    /// The response for `error`:
    /// - an overloaded object: `503` with `Retry-After: 1` (as for `UNAVAILABLE` and `RESOURCE_EXHAUSTED`);
    /// - a ``DurableObjectError``: the status of its code in ``statuses``, except that a `NOT_FOUND` raised on the
    ///   worker's side (an unknown binding: the app's configuration is wrong) is `500`;
    /// - any other error: `500` with its description.
    public static func response(for error: any Error) -> DurableObjects.Response {
        guard let error = error as? DurableObjectError else {
            return DurableObjects.Response("\(error)", status: .internalServerError)
        }
        let code = error.overloaded ? 503 : status(of: error)
        var headers: HTTPFields = [:]
        if code == 503 { headers[HTTPField.Name.retryAfter] = "1" }
        return DurableObjects.Response(error.message, status: HTTPResponse.Status(code: code), headers: headers)
    }

    /// The status of `error`'s code (ignoring `overloaded`).
    public static func status(of error: DurableObjectError) -> Int {
        if error.code == .notFound && !error.remote { return 500 }
        return statuses[error.code] ?? 500
    }
}

/// The request context of the bridge: Hummingbird's core storage plus the client's address.
struct BridgeContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?
    let channel: any Channel

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        remoteAddress = source.channel.remoteAddress
        channel = source.channel
    }
}

extension HTTPField.Name {
    /// `CF-Connecting-IP`: the address of the client that made the request.
    public static let cfConnectingIP = HTTPField.Name("CF-Connecting-IP")!
    /// `X-Forwarded-For`: the addresses the request passed through.
    public static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
    /// `traceparent`: the W3C trace context of the caller's span.
    public static let traceparent = HTTPField.Name(TraceContextKeys.traceparent)!
    /// `tracestate`: the W3C trace state that goes with `traceparent`.
    public static let tracestate = HTTPField.Name(TraceContextKeys.tracestate)!
}
