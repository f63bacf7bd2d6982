import ArgumentParser
import DurableEtcd
import DurableGateway
import DurableHTTP
import DurableMetrics
import DurableObjects
import Foundation
import Logging
import ServiceLifecycle

/// `durable gateway`: the front door of a cluster: registry, placement, routing to the nodes, and the app's worker
/// over HTTP.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract:
            "Run the gateway: binding registry, placement, routing of object calls to storage nodes, and the app's worker over HTTP."
    )

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The HTTP port of the worker (0 picks a free one; the chosen port is printed).")
    var port: Int = 8787

    @Option(name: .customLong("rpc-port"), help: "The RPC port (0 picks a free one; the chosen port is printed).")
    var rpcPort: Int = 7070

    @Option(
        name: .customLong("metrics-port"),
        help:
            "The port of the Prometheus endpoint (GET /metrics) on --host (0 picks a free one; the chosen port is printed). Without it no metrics port is opened."
    )
    var metricsPort: Int?

    @Option(help: "The folder of the gateway's database (registry and placement).")
    var data: String

    @Option(help: "The durable.toml to publish at start (default: ./durable.toml, else the app's built-in one).")
    var config: String?

    @Option(help: "The environment to publish and serve bindings for (default: the top level).")
    var env: String?

    @Option(help: "The largest WebSocket message a client may send, in bytes (larger ones close the socket with 1009).")
    var maxWebsocketMessageSize: Int = WebSocketLimits.defaultMaximumMessageSize

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @OptionGroup(title: "Authentication")
    var secrets: SecretOptions

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @OptionGroup(title: "Tracing")
    var tracing: TracingOptions

    func validate() throws {
        guard (0...65535).contains(rpcPort) else { throw ValidationError("--rpc-port must be between 0 and 65535") }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be between 0 and 65535")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard overloadHoldOffMilliseconds >= 0 else {
            throw ValidationError("--overload-hold-off-ms must be 0 or more, not \(overloadHoldOffMilliseconds)")
        }
        guard (1...(64 * 1024 * 1024)).contains(maxWebsocketMessageSize) else {
            throw ValidationError("--max-websocket-message-size must be between 1 and 67108864 bytes")
        }
        guard leaseTTL >= 2 else { throw ValidationError("--lease-ttl must be at least 2 seconds") }
        if let advertise, advertise.split(separator: ":").count != 2 || Int(advertise.split(separator: ":")[1]) == nil {
            throw ValidationError("--advertise must be host:port, not '\(advertise)'")
        }
    }

    @Option(
        help:
            "etcd endpoints (http://HOST:PORT, comma-separated): keep the cluster's registry and placement there instead of in the gateway's database, so that any number of gateways on the same etcd serve the same cluster; nodes started with --etcd hold their membership there."
    )
    var etcd: String?

    @Option(
        name: .customLong("lease-ttl"),
        help: "With --etcd: seconds this gateway's announcement outlives its last renewal (at least 2).")
    var leaseTTL: Int = 3

    @Option(
        help:
            "The host:port nodes reach this gateway's RPC port at (default: --host and the RPC port; set it when listening on 0.0.0.0)."
    )
    var advertise: String?

    @Option(help: "The cluster's name in etcd (clusters that share an etcd keep apart under it).")
    var cluster: String = "default"

    @Flag(
        name: .customLong("auto-rebalance"),
        help: "Rebalance the slots (as `durable rebalance` does) when a node registers and the shares are uneven.")
    var autoRebalance = false

    @Option(
        name: .customLong("overload-hold-off-ms"),
        help:
            "After a node reports an object overloaded, refuse further calls to it at the gateway, with the node's error, for this many milliseconds (0: forward every call)."
    )
    var overloadHoldOffMilliseconds: Int = 5

    func run() async throws {
        var logger = Logger(label: "durable.gateway")
        logger.logLevel = logLevel
        let app = CurrentApplication.value
        guard let worker = app.worker else { throw CommandError(DurableApplication.noEventHandlers) }
        let configuration = try ConfigurationSource.load(path: config, app: app).configuration
        let keys = try secrets.gatewayKeys(logger: logger)
        let spanExporter = try tracing.bootstrap(
            serviceName: "durable-gateway", clusterAuthenticated: keys != nil, logger: logger)
        let metrics = metricsPort.map { _ in MetricsRegistry() }
        var gatewayConfiguration = GatewayConfiguration(
            host: host, rpcPort: rpcPort, dataDirectory: data, environment: env,
            keys: keys)
        if let metrics { gatewayConfiguration.metricsFactory = metrics.factory() }
        // Clients of the gateway (applications, operators) may come without certificates: they prove tokens.
        let processTLS = try tls.load(clientCertificates: .optional, logger: logger)
        gatewayConfiguration.tls = processTLS?.server
        gatewayConfiguration.nodeTLS = processTLS?.client
        gatewayConfiguration.advertisedAddress = advertise
        gatewayConfiguration.autoRebalance = autoRebalance
        gatewayConfiguration.overloadHoldOff = .milliseconds(overloadHoldOffMilliseconds)
        var clusterStore: EtcdClusterStore?
        if let etcd {
            let client = try EtcdClient(endpoints: [etcd], tls: try tls.etcdTLS(), logger: logger)
            do {
                clusterStore = try await EtcdClusterStore.open(
                    client: client, cluster: cluster, leaseTTL: leaseTTL, logger: logger)
            } catch {
                await client.close()
                throw CommandError("durable gateway cannot read the cluster from etcd at \(etcd): \(error)")
            }
            logger.info("cluster state in etcd", metadata: ["endpoints": "\(etcd)", "cluster": "\(cluster)"])
        }
        // The gateway closes the cluster store when it stops.
        let gateway = try Gateway(
            configuration: gatewayConfiguration, exportedClasses: app.classNames, cluster: clusterStore,
            logger: logger)
        do {
            try await gateway.publish(configuration, environment: env)
        } catch {
            await gateway.shutdown()
            throw CommandError("\(error)")
        }
        let rpcPort = try await gateway.start()
        let host = self.host
        var bridgeConfiguration = HTTPBridgeConfiguration(
            host: host, port: port, maximumWebSocketMessageSize: maxWebsocketMessageSize)
        bridgeConfiguration.tls = processTLS?.server.httpsConfiguration()
        let scheme = processTLS == nil ? "http" : "https"
        let bridge = HTTPBridge(
            configuration: bridgeConfiguration, worker: worker,
            environment: { gateway.workerEnvironment() }, webSockets: gateway.webSockets, logger: logger,
            onStarted: { httpPort in
                // A line tools and tests wait for.
                print(
                    "durable gateway listening on \(host):\(rpcPort) (RPC), worker on \(scheme)://\(host):\(httpPort)")
                fflush(nil)
            })
        var services: [any Service] = [gateway, bridge]
        if let processTLS { services.append(CertificateReloader(tls: processTLS, logger: logger)) }
        if let metrics, let metricsPort {
            metrics.updateBeforeScrape { gateway.updateGauges() }
            services.insert(
                MetricsServer(
                    host: host, port: metricsPort, metrics: metrics, logger: logger,
                    onStarted: { port in
                        print("durable gateway metrics on http://\(host):\(port)/metrics")
                        fflush(nil)
                    }), at: 0)
        }
        if let spanExporter { services.insert(spanExporter, at: 0) }
        let group = ServiceGroup(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
            logger: logger)
        try await group.run()
    }
}
