import DurableObjects
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// How the HTTP bridge listens.
public struct HTTPBridgeConfiguration: Sendable {
    /// The address to listen on.
    public var host: String
    /// The port (0 picks a free one).
    public var port: Int
    /// The largest request body accepted (larger ones are answered `413 Content Too Large`).
    public var maximumBodySize: Int

    /// Creates a configuration.
    public init(host: String = "127.0.0.1", port: Int, maximumBodySize: Int = 32 * 1024 * 1024) {
        self.host = host
        self.port = port
        self.maximumBodySize = maximumBodySize
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

    /// Creates a bridge.
    ///
    /// - Parameters:
    ///   - environment: gives the bindings for each request (they change when a configuration is published).
    ///   - onStarted: called with the bound port once the server listens.
    public init(
        configuration: HTTPBridgeConfiguration, worker: Worker,
        environment: @escaping @Sendable () -> DurableObjects.Environment,
        logger: Logger = Logger(label: "durable.http"), onStarted: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.worker = worker
        self.environment = environment
        self.logger = logger
        self.onStarted = onStarted
    }

    /// Serves until graceful shutdown.
    public func run() async throws {
        let responder = CallbackResponder<BridgeContext> { [self] request, context in
            try await self.respond(to: request, context: context)
        }
        let onStarted = self.onStarted
        let application = Application(
            responder: responder,
            configuration: ApplicationConfiguration(
                address: .hostname(configuration.host, port: configuration.port), serverName: "durable"),
            onServerRunning: { channel in await onStarted(channel.localAddress?.port ?? 0) },
            logger: logger)
        try await application.run()
    }

    private func respond(to request: Hummingbird.Request, context: BridgeContext) async throws -> Hummingbird.Response {
        var head = request.head
        let ip = context.remoteAddress?.ipAddress ?? "127.0.0.1"
        // The client cannot choose its own CF-Connecting-IP; X-Forwarded-For gains the hop.
        head.headerFields[HTTPField.Name.cfConnectingIP] = ip
        let forwardedFor = head.headerFields[HTTPField.Name.xForwardedFor].map { "\($0), \(ip)" } ?? ip
        head.headerFields[HTTPField.Name.xForwardedFor] = forwardedFor
        let buffer = try await request.body.collect(upTo: configuration.maximumBodySize)
        let incoming = DurableObjects.Request(head: head, body: Array(buffer: buffer))
        let answer: DurableObjects.Response
        do {
            answer = try await worker.fetch(incoming, environment())
        } catch {
            answer = HTTPErrorMapping.response(for: error)
            logger.log(
                level: answer.status.code >= 500 && answer.status != .serviceUnavailable ? .error : .debug,
                "worker failed",
                metadata: [
                    "path": "\(incoming.path)", "status": "\(answer.status.code)",
                    "error": "\(error)",
                ])
        }
        logger.trace("\(incoming.method) \(incoming.path) → \(answer.status.code)")
        return Hummingbird.Response(
            status: answer.head.status, headers: answer.head.headerFields,
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: answer.body)))
    }
}

/// How errors that reach the bridge become HTTP responses.
public enum HTTPErrorMapping {
    /// The response for `error`:
    /// - overloaded objects and unreachable nodes: `503` with the message and `Retry-After`;
    /// - invalid ids and other bad arguments: `400`;
    /// - a deadline that passed: `504`;
    /// - anything else, an unknown binding included: `500` with the reason.
    public static func response(for error: any Error) -> DurableObjects.Response {
        guard let error = error as? DurableObjectError else {
            return DurableObjects.Response("\(error)", status: .internalServerError)
        }
        if error.overloaded || error.code == .unavailable || error.code == .resourceExhausted {
            return DurableObjects.Response(
                error.message, status: .serviceUnavailable, headers: [HTTPField.Name.retryAfter: "1"])
        }
        switch error.code {
        case .invalidArgument:
            return DurableObjects.Response(error.message, status: .badRequest)
        case .deadlineExceeded:
            return DurableObjects.Response(error.message, status: .gatewayTimeout)
        default:
            return DurableObjects.Response(error.message, status: .internalServerError)
        }
    }
}

/// The request context of the bridge: Hummingbird's core storage plus the client's address.
struct BridgeContext: RequestContext, RemoteAddressRequestContext {
    var coreContext: CoreRequestContextStorage
    let remoteAddress: SocketAddress?

    init(source: ApplicationRequestContextSource) {
        coreContext = CoreRequestContextStorage(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

extension HTTPField.Name {
    /// `CF-Connecting-IP`: the address of the client that made the request.
    public static let cfConnectingIP = HTTPField.Name("CF-Connecting-IP")!
    /// `X-Forwarded-For`: the addresses the request passed through.
    public static let xForwardedFor = HTTPField.Name("X-Forwarded-For")!
}
