import ArgumentParser
import DurableClient
import DurableEtcd
import DurableGateway
import DurableMetrics
import DurableNode
import DurableObjects
import DurableWire
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// `durable node`: a storage node serving the app's objects over the RPC protocol.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a storage node: the app's objects on a local RocksDB database, served over RPC."
    )

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(help: "The RPC port (0 picks a free one; the chosen port is printed).")
    var port: Int = 7701

    @Option(help: "The folder of the node's database (created when missing).")
    var data: String

    @Option(name: .customLong("node-id"), help: "The node's name in the cluster.")
    var nodeID: String = "node1"

    @Option(help: "Seconds without events after which an idle object is evicted from memory.")
    var idleTimeout: Double = 70

    @Option(help: "Requests that may wait in one object's queue.")
    var maxQueuedRequests: Int = MailboxLimits().maxQueuedRequests

    @Option(help: "Bytes of request bodies that may wait in one object's queue.")
    var maxQueuedBytes: Int = MailboxLimits().maxQueuedBytes

    @Option(
        name: .customLong("metrics-port"),
        help:
            "The port of the Prometheus endpoint (GET /metrics) on --host (0 picks a free one; the chosen port is printed). Without it no metrics port is opened."
    )
    var metricsPort: Int?

    @Option(
        help:
            "The gateways to join (host:port, comma-separated); the node registers itself with the first that answers once it listens, and sends objects' calls to other objects through them. With --etcd and no --gateway, the live gateways etcd lists."
    )
    var gateway: String?

    @Option(
        help:
            "The host:port the gateway should use to reach this node (default: --host and the bound port; set it when listening on 0.0.0.0)."
    )
    var advertise: String?

    @Flag(
        name: .customLong("replace-lost-node"),
        help: """
            This node replaces a lost one under the same --node-id, on a new database: the gateway records the new \
            database and logs that the data of the node's slots is gone (without it, the gateway refuses a node id \
            that comes back with another database).
            """)
    var replaceLostNode = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(
        help:
            "etcd endpoints (http://HOST:PORT, comma-separated): hold this node's membership there under a lease, so that gateways on the same etcd give new slots only to live nodes."
    )
    var etcd: String?

    @Option(
        name: .customLong("lease-ttl"), help: "Seconds the membership outlives the node's last renewal (at least 2).")
    var leaseTTL: Int = 3

    @Option(help: "The cluster's name in etcd (clusters that share an etcd keep apart under it).")
    var cluster: String = "default"

    @Option(
        name: .customLong("standby-for"),
        help:
            "Run as the standby of this node: apply its write groups (Node/ApplyGroups) instead of joining the cluster as an owner of slots."
    )
    var standbyFor: String?

    @OptionGroup(title: "Authentication")
    var secrets: SecretOptions

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        if let metricsPort, !(0...65535).contains(metricsPort) {
            throw ValidationError("--metrics-port must be between 0 and 65535")
        }
        guard idleTimeout > 0 else { throw ValidationError("--idle-timeout must be positive") }
        guard maxQueuedRequests > 0 else { throw ValidationError("--max-queued-requests must be at least 1") }
        guard maxQueuedBytes > 0 else { throw ValidationError("--max-queued-bytes must be at least 1") }
        if let gateway {
            do {
                _ = try DurableClient.Endpoint.list(gateway)
            } catch let error as DurableObjectError {
                throw ValidationError("--gateway must be host:port[,host:port…]: \(error.message)")
            }
        }
        guard leaseTTL >= 2 else { throw ValidationError("--lease-ttl must be at least 2 seconds") }
        if let advertise, advertise.split(separator: ":").count != 2 || Int(advertise.split(separator: ":")[1]) == nil {
            throw ValidationError("--advertise must be host:port, not '\(advertise)'")
        }
    }

    func run() async throws {
        var logger = Logger(label: "durable.node")
        logger.logLevel = logLevel
        let secret = try secrets.nodeSecret(logger: logger)
        var runtime = RuntimeConfiguration(idleTimeout: .milliseconds(Int64(idleTimeout * 1000)))
        runtime.mailbox.maxQueuedRequests = maxQueuedRequests
        runtime.mailbox.maxQueuedBytes = maxQueuedBytes
        let metrics = metricsPort.map { _ in MetricsRegistry() }
        if let metrics { runtime.metricsFactory = metrics.factory(labels: [("node", nodeID)]) }
        let nodeID = self.nodeID
        let host = self.host
        let advertise = self.advertise
        let app = CurrentApplication.value
        let replaceLostNode = self.replaceLostNode
        let standbyFor = self.standbyFor
        // Set when the gateway refuses the node: the node then stops and the command fails with the reason.
        let refusal = Mutex<String?>(nil)
        let etcdClient = try etcd.map { try EtcdClient(endpoints: [$0], logger: logger) }
        // With etcd, the node follows the cluster's keys to know the live gateways.
        var view: EtcdPlacementStore?
        if let etcdClient {
            do {
                view = try await EtcdPlacementStore.open(client: etcdClient, cluster: cluster, logger: logger)
            } catch {
                logger.warning(
                    "could not read the cluster from etcd; using --gateway only", metadata: ["error": "\(error)"])
            }
        }
        let configuredGateways = try gateway.map { try DurableClient.Endpoint.list($0) } ?? []
        let directory: GatewayDirectory? =
            configuredGateways.isEmpty && view == nil
            ? nil
            : GatewayDirectory(
                configured: configuredGateways, liveGateways: { [view] in view?.liveGateways ?? [:] },
                credentials: secret, logger: logger)
        let membership = Mutex<Task<Void, Never>?>(nil)
        let (cluster, leaseTTL) = (self.cluster, self.leaseTTL)
        let group = Mutex<ServiceGroup?>(nil)
        let nodeBox = Mutex<StorageNode?>(nil)
        let node = try StorageNode(
            configuration: NodeConfiguration(
                host: host, port: port, dataDirectory: data, nodeID: nodeID, runtime: runtime,
                clusterSecret: secret, standbyFor: standbyFor),
            classes: app.classes, bindings: ConfigurationSource.defaultBindings(app: app),
            logger: logger,
            onStarted: { [logger] boundPort in
                if let standbyFor {
                    // A standby owns no slot: it neither joins a gateway nor announces itself in etcd.
                    logger.notice("serving as a standby", metadata: ["primary": "\(standbyFor)"])
                    print("durable node \(nodeID) listening on \(host):\(boundPort) (standby for \(standbyFor))")
                    fflush(nil)
                    return
                }
                if let directory, let node = nodeBox.withLock({ $0 }) {
                    // Joining may take a few tries while the gateway starts; the line below waits for it.
                    switch await GatewayRegistration.register(
                        through: directory.client, node: node, address: advertise ?? "\(host):\(boundPort)",
                        replacingLostNode: replaceLostNode, logger: logger)
                    {
                    case .joined:
                        break
                    case .refused(let reason):
                        logger.error("the gateway refused this node", metadata: ["error": "\(reason)"])
                        let gateways = directory.client.endpoints.map(\.description).joined(separator: ",")
                        refusal.withLock { $0 = "durable node \(nodeID) could not join \(gateways): \(reason)" }
                        await group.withLock({ $0 })?.triggerGracefulShutdown()
                        return
                    case .unreachable:
                        logger.error(
                            "could not join a gateway; serving without it",
                            metadata: ["gateways": "\(directory.client.endpoints.map(\.description))"])
                    }
                }
                if let etcdClient, let node = nodeBox.withLock({ $0 }) {
                    // Alive for the gateways while this process renews its lease.
                    let record: @Sendable (Int) -> EtcdPlacementStore.MemberRecord = { active in
                        EtcdPlacementStore.MemberRecord(
                            address: advertise ?? "\(host):\(boundPort)", databaseIdentity: node.databaseIdentity,
                            activeObjects: active)
                    }
                    let member = LeasedKey(
                        client: etcdClient, key: EtcdPlacementStore.memberKey(cluster: cluster, nodeID: nodeID),
                        value: record(node.runtime.activeCount).bytes, ttl: leaseTTL, logger: logger)
                    do {
                        try await member.acquire()
                    } catch {
                        logger.warning("could not announce this node in etcd yet", metadata: ["error": "\(error)"])
                    }
                    membership.withLock {
                        $0 = Task {
                            // The record's load is written again every ten seconds when it changed.
                            let reporter = Task {
                                var reported = node.runtime.activeCount
                                while !Task.isCancelled {
                                    try? await Task.sleep(for: .seconds(10))
                                    let now = node.runtime.activeCount
                                    if now != reported, (try? await member.update(record(now).bytes)) != nil {
                                        reported = now
                                    }
                                }
                            }
                            await member.run()
                            reporter.cancel()
                        }
                    }
                }
                // A line tools and tests can wait for.
                print("durable node \(nodeID) listening on \(host):\(boundPort)")
                fflush(nil)
            })
        nodeBox.withLock { $0 = node }
        if let directory {
            // In a cluster, an object's calls to other objects go through a gateway to their owners, and socket
            // frames to the gateway that holds the socket.
            try node.routeObjectCalls(through: directory.client)
            node.sendWebSocketFrames(through: directory.webSocketHub)
            directory.follow()
        }
        var services: [any Service] = [node]
        if let metrics, let metricsPort {
            metrics.updateBeforeScrape { node.runtime.updateGauges() }
            services.insert(
                MetricsServer(
                    host: host, port: metricsPort, metrics: metrics, logger: logger,
                    onStarted: { [host] port in
                        print("durable node \(nodeID) metrics on http://\(host):\(port)/metrics")
                        fflush(nil)
                    }), at: 0)
        }
        let serviceGroup = ServiceGroup(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        group.withLock { $0 = serviceGroup }
        try await serviceGroup.run()
        if let task = membership.withLock({ $0 }) {
            task.cancel()
            await task.value
        }
        view?.close()
        await etcdClient?.close()
        await directory?.close()
        if let reason = refusal.withLock({ $0 }) { throw CommandError(reason) }
    }
}
