import ArgumentParser
import DurableCertificates
import DurableGateway
import DurableHTTP
import DurableMetrics
import DurableNode
import DurableObjects
import DurableWire
import Foundation
import Logging
import ServiceLifecycle

/// `durable dev`: the whole service in one process for local work: a gateway with the app's worker over HTTP and
/// its configuration published, and one or more storage nodes, with data kept in one folder across restarts. The
/// gateway calls its nodes in-process; their RPC ports stay open for tools.
struct DevCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dev",
        abstract: "Run a local gateway and storage node(s) serving the app, with its durable.toml published."
    )

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The HTTP port of the worker (0 picks a free one).")
    var port: Int = 8787

    @Option(name: .customLong("rpc-port"), help: "The RPC port for DurableClient (0 picks a free one).")
    var rpcPort: Int = 7070

    @Option(help: "The folder that keeps the registry and every node's objects across restarts.")
    var data: String = ".durable"

    @Option(
        name: .customLong("metrics-port"),
        help:
            "The port of the Prometheus endpoint (GET /metrics, the gateway's and every node's figures) on --host (0 picks a free one; the chosen port is printed). Without it no metrics port is opened."
    )
    var metricsPort: Int?

    @Option(help: "How many storage nodes to run.")
    var nodes: Int = 1

    @Option(help: "The durable.toml to publish (default: ./durable.toml, else the app's built-in one).")
    var config: String?

    @Option(help: "The environment to publish and serve (default: the top level).")
    var env: String?

    @Option(help: "Seconds without events after which an idle object is evicted from memory.")
    var idleTimeout: Double = 70

    @Option(help: "The largest WebSocket message a client may send, in bytes (larger ones close the socket with 1009).")
    var maxWebsocketMessageSize: Int = WebSocketLimits.defaultMaximumMessageSize

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Flag(
        name: .customLong("nodes-over-tcp"),
        help: ArgumentHelp(
            "Reach the nodes over their loopback RPC ports, as a gateway reaches nodes in other processes, instead of calling them in-process (to compare the two).",
            visibility: .hidden))
    var nodesOverTCP = false

    @Flag(
        name: .customLong("tls"),
        help: ArgumentHelp(
            "Serve TLS on the RPC port and HTTPS on the worker's, with a local CA made on first use in <data>/tls (ca.pem is what clients trust: durable commands run in this folder find it)."
        ))
    var tls = false

    @OptionGroup(title: "Tracing")
    var tracing: TracingOptions

    func validate() throws {
        guard (0...65535).contains(rpcPort) else { throw ValidationError("--rpc-port must be between 0 and 65535") }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be between 0 and 65535")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard (1...(64 * 1024 * 1024)).contains(maxWebsocketMessageSize) else {
            throw ValidationError("--max-websocket-message-size must be between 1 and 67108864 bytes")
        }
        guard (1...64).contains(nodes) else { throw ValidationError("--nodes must be between 1 and 64") }
        guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be positive") }
    }

    func run() async throws {
        var logger = Logger(label: "durable.dev")
        logger.logLevel = logLevel
        // The local gateway and nodes prove the local cluster secret to each other.
        let spanExporter = try tracing.bootstrap(serviceName: "durable-dev", clusterAuthenticated: true, logger: logger)
        let app = CurrentApplication.value
        guard let worker = app.worker else { throw CommandError(DurableApplication.noEventHandlers) }
        let configuration = try ConfigurationSource.load(path: config, app: app).configuration
        let root = URL(fileURLWithPath: data)
        let keys = try Self.localKeys(in: root.appendingPathComponent("secrets"))

        let metrics = metricsPort.map { _ in MetricsRegistry() }
        var gatewayConfiguration = GatewayConfiguration(
            host: host, rpcPort: rpcPort, dataDirectory: root.appendingPathComponent("gateway").path,
            environment: env, keys: keys)
        let processTLS =
            tls ? try Self.localTLS(in: root.appendingPathComponent("tls"), host: host, logger: logger) : nil
        gatewayConfiguration.tls = processTLS?.server
        gatewayConfiguration.nodeTLS = processTLS?.client
        if let metrics { gatewayConfiguration.metricsFactory = metrics.factory() }
        let gateway = try Gateway(
            configuration: gatewayConfiguration, exportedClasses: app.classNames, logger: logger)
        var storageNodes: [StorageNode] = []
        let rpcPort: Int
        do {
            try await gateway.publish(configuration, environment: env)
            rpcPort = try await gateway.start()
            for number in 1...nodes {
                let nodeID = "node-\(number)"
                var runtime = RuntimeConfiguration(idleTimeout: .milliseconds(Int64(idleTimeout * 1000)))
                if let metrics { runtime.metricsFactory = metrics.factory(labels: [("node", nodeID)]) }
                var nodeConfiguration = NodeConfiguration(
                    host: host, port: 0, dataDirectory: root.appendingPathComponent(nodeID).path, nodeID: nodeID,
                    runtime: runtime, clusterSecret: keys.clusterSecret)
                if let processTLS {
                    nodeConfiguration.tls = try RPCServerTLS(
                        files: processTLS.server.files, clientCertificates: .required)
                    nodeConfiguration.peerTLS = processTLS.client
                }
                let node = try StorageNode(
                    configuration: nodeConfiguration,
                    classes: app.classes, bindings: [:], logger: logger)
                storageNodes.append(node)
                try await InProcessNodes.join(node, to: gateway, host: host, callingInProcess: !nodesOverTCP)
            }
            let missing = gateway.placement.nodes.keys.filter {
                !$0.hasPrefix("node-") || Int($0.dropFirst(5))! > nodes
            }
            if !missing.isEmpty {
                logger.warning(
                    "the placement has objects on nodes that are not running; they answer UNAVAILABLE",
                    metadata: ["nodes": "\(missing.sorted().joined(separator: ","))"])
            }
        } catch {
            for node in storageNodes { await node.shutdown() }
            await gateway.shutdown()
            throw CommandError("\(error)")
        }
        let host = self.host
        let nodeCount = nodes
        let dataPath = data
        var bridgeConfiguration = HTTPBridgeConfiguration(
            host: host, port: port, maximumWebSocketMessageSize: maxWebsocketMessageSize)
        bridgeConfiguration.tls = processTLS?.server.httpsConfiguration()
        let scheme = processTLS == nil ? "http" : "https"
        let tlsLine = processTLS == nil ? "" : "\nTLS on: clients trust \(dataPath)/tls/ca.pem."
        let bridge = HTTPBridge(
            configuration: bridgeConfiguration, worker: worker,
            environment: { gateway.workerEnvironment() }, webSockets: gateway.webSockets, logger: logger,
            onStarted: { httpPort in
                print(
                    """
                    durable dev: \(nodeCount) node\(nodeCount == 1 ? "" : "s"), data in \(dataPath)
                    Ready on \(scheme)://\(host):\(httpPort) (RPC for DurableClient on \(host):\(rpcPort)); Ctrl-C stops.
                    RPC keys in \(dataPath)/secrets: api-token for clients, admin-token for durable publish.\(tlsLine)
                    """)
                fflush(nil)
            })
        // Graceful shutdown runs in reverse: the HTTP bridge, then the gateway, then the nodes (then metrics).
        var services: [any Service] = storageNodes + [gateway, bridge]
        if let processTLS { services.append(CertificateReloader(tls: processTLS, logger: logger)) }
        if let metrics, let metricsPort {
            metrics.updateBeforeScrape { [storageNodes] in
                gateway.updateGauges()
                for node in storageNodes { node.runtime.updateGauges() }
            }
            services.insert(
                MetricsServer(
                    host: host, port: metricsPort, metrics: metrics, logger: logger,
                    onStarted: { port in
                        print("durable dev metrics on http://\(host):\(port)/metrics")
                        fflush(nil)
                    }), at: 0)
        }
        if let spanExporter { services.insert(spanExporter, at: 0) }
        let group = ServiceGroup(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        try await group.run()
        print("durable dev stopped; data kept in \(dataPath)")
    }

    /// The local CA and the certificate of this machine (`localhost`, `127.0.0.1`, `::1` and `host`), made on first
    /// use and kept in `folder`: what `durable dev --tls` serves with. The CA's key is not kept.
    static func localTLS(in folder: URL, host: String, logger: Logger) throws -> ProcessTLS {
        let files = CertificateFolder(folder: folder.path)
        if !files.exists {
            let authority = try LocalCertificateAuthority(name: "durable dev local CA")
            var addresses = ["127.0.0.1", "::1"]
            var names = ["localhost"]
            if LocalCertificateAuthority.isIPAddress(host) {
                if !addresses.contains(host) { addresses.append(host) }
            } else if host != "localhost" {
                names.append(host)
            }
            try files.write(
                authority: authority,
                issued: try authority.issue(commonName: "durable dev", dnsNames: names, ipAddresses: addresses))
            logger.notice("made a local CA and certificate for TLS", metadata: ["folder": "\(folder.path)"])
        }
        return try ProcessTLS(
            files: TLSFiles(
                certificate: files.certificate, privateKey: files.privateKey,
                certificateAuthority: files.certificateAuthority),
            clientCertificates: .optional, logger: logger)
    }

    /// The keys of the local cluster, made on first start and kept in `folder` (readable by the owner only), so
    /// that the RPC ports of `durable dev` are never open to everyone: the cluster secret between the gateway
    /// and its nodes, an admin token for `durable publish`, an API token for `DurableClient`.
    static func localKeys(in folder: URL) throws -> ClusterKeys {
        ClusterKeys(
            clusterSecret: try SecretSource.localKey("cluster-secret", in: folder, role: .cluster),
            adminTokens: [try SecretSource.localKey("admin-token", in: folder, role: .admin)],
            apiTokens: [try SecretSource.localKey("api-token", in: folder, role: .client)])
    }
}
