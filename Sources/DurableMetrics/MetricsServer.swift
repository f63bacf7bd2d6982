import Hummingbird
import Logging
import ServiceLifecycle

/// The Prometheus endpoint of a process: `GET /metrics` answers the registry's exposition as
/// `text/plain; version=0.0.4`; every other path is 404.
///
/// A service: it serves until graceful shutdown of its group.
public struct MetricsServer: Service {
    /// The content type of the text exposition format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// The address to listen on.
    public let host: String
    /// The port to listen on (0 picks a free one, reported to `onStarted`).
    public let port: Int
    private let metrics: MetricsRegistry
    private let logger: Logger
    private let onStarted: @Sendable (Int) async -> Void

    /// Creates a server for `metrics` on `host:port`; `onStarted` receives the bound port once it listens.
    public init(
        host: String, port: Int, metrics: MetricsRegistry, logger: Logger = Logger(label: "durable.metrics"),
        onStarted: @escaping @Sendable (Int) async -> Void = { _ in }
    ) {
        self.host = host
        self.port = port
        self.metrics = metrics
        self.logger = logger
        self.onStarted = onStarted
    }

    /// Serves until graceful shutdown.
    public func run() async throws {
        let router = Router()
        router.get("/metrics") { [metrics] _, _ in
            Response(
                status: .ok, headers: [.contentType: Self.contentType],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        let onStarted = self.onStarted
        let logger = self.logger
        let host = self.host
        let application = Application(
            router: router,
            configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "durable"),
            onServerRunning: { channel in
                let bound = channel.localAddress?.port ?? 0
                logger.info("metrics served", metadata: ["address": "http://\(host):\(bound)/metrics"])
                await onStarted(bound)
            },
            logger: logger)
        try await application.run()
    }
}
