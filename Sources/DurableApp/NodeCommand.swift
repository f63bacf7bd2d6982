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

    @Option(
        help:
            "With a standby: sync acknowledges a write once both copies are durable (or the node is recorded as running without its standby); async once the local copy is (a failover may lose the writes the standby had not applied)."
    )
    var replication: ReplicationPolicy = .sync

    @Option(
        name: .customLong("primary"),
        help: "With --standby-for and without --etcd: the primary's host:port, to attach to it.")
    var primaryAddress: String?

    @Option(
        name: .customLong("standby-timeout"),
        help: "Seconds writes wait for an absent standby before the node records that it runs without it.")
    var standbyTimeout: Double = 1

    @OptionGroup(title: "Authentication")
    var secrets: SecretOptions

    @OptionGroup(title: "TLS")
    var tls: TLSOptions

    @OptionGroup(title: "Tracing")
    var tracing: TracingOptions

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
        if standbyFor != nil, etcd == nil, primaryAddress == nil {
            throw ValidationError(
                "--standby-for needs --etcd (to find the primary and take over) or --primary HOST:PORT")
        }
        guard standbyTimeout > 0 else { throw ValidationError("--standby-timeout must be positive") }
        if let advertise, advertise.split(separator: ":").count != 2 || Int(advertise.split(separator: ":")[1]) == nil {
            throw ValidationError("--advertise must be host:port, not '\(advertise)'")
        }
    }

    func run() async throws {
        var configuredLogger = Logger(label: "durable.node")
        configuredLogger.logLevel = logLevel
        let logger = configuredLogger
        let secret = try secrets.nodeSecret(logger: logger)
        let spanExporter = try tracing.bootstrap(
            serviceName: "durable-node", clusterAuthenticated: secret != nil, logger: logger)
        // Only the cluster's processes call a node: each must present a certificate signed by the cluster's CA.
        let processTLS = try tls.load(clientCertificates: .required, logger: logger)
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
        // What the node's tasks share; `refusal` is set when the node must stop: the command fails with it.
        let shared = NodeRunState()
        let etcdTLS = try tls.etcdTLS()
        let etcdClient = try etcd.map { try EtcdClient(endpoints: [$0], tls: etcdTLS, logger: logger) }
        // With etcd, the node follows the cluster's keys to know the live gateways.
        var openedView: EtcdPlacementStore?
        if let etcdClient {
            do {
                openedView = try await EtcdPlacementStore.open(client: etcdClient, cluster: cluster, logger: logger)
            } catch {
                logger.warning(
                    "could not read the cluster from etcd; using --gateway only", metadata: ["error": "\(error)"])
            }
        }
        // The node's role: with etcd, what etcd says (a standby that took over stays primary; a primary that was
        // replaced comes back as its replacement's standby).
        let view = openedView
        let keys = ReplicationKeys(cluster: cluster)
        var standbyFor = self.standbyFor
        var term: UInt64 = 1
        var rejoining = false
        if let etcdClient {
            let termKey = keys.term(nodeID)
            let initial = standbyFor.map { NodeTerm.standby(of: $0, 0) } ?? .primary(1)
            _ = try await etcdClient.transaction(
                Transaction(
                    comparisons: [.absent(termKey)], success: [.put(key: termKey, value: initial.bytes, lease: nil)]))
            guard let stored = try await etcdClient.get(termKey), let role = NodeTerm(stored.value) else {
                throw CommandError(
                    "etcd holds no readable role for node \(nodeID) under \(String(decoding: termKey, as: UTF8.self))")
            }
            switch role {
            case .primary(let stored):
                if standbyFor != nil {
                    logger.notice(
                        "this standby took over earlier: it runs as the primary", metadata: ["term": "\(stored)"])
                }
                standbyFor = nil
                term = stored
            case .standby(let primary, let stored):
                if standbyFor == nil || standbyFor != primary {
                    logger.notice(
                        "this node was replaced by its standby: it rejoins as that node's standby",
                        metadata: ["primary": "\(primary)", "term": "\(stored)"])
                    rejoining = true
                }
                standbyFor = primary
                term = stored
            }
        }
        let (resolvedStandbyFor, resolvedTerm, resolvedRejoining) = (standbyFor, term, rejoining)
        let configuredGateways = try gateway.map { try DurableClient.Endpoint.list($0) } ?? []
        let directory: GatewayDirectory? =
            configuredGateways.isEmpty && view == nil
            ? nil
            : GatewayDirectory(
                configured: configuredGateways, liveGateways: { [view] in view?.liveGateways ?? [:] },
                credentials: secret, tls: processTLS?.client, logger: logger)
        let (cluster, leaseTTL) = (self.cluster, self.leaseTTL)
        /// The node was replaced by its standby: it stops, and the command fails saying how to rejoin.
        @Sendable func fenced(_ reason: String) async {
            shared.nodeBox.withLock({ $0 })?.refuseEverything("Node \(nodeID) was replaced: \(reason)")
            shared.refusal.withLock {
                $0 =
                    "durable node \(nodeID) was replaced by its standby (\(reason)); start it again to rejoin as its "
                    + "standby"
            }
            await shared.group.withLock({ $0 })?.triggerGracefulShutdown()
        }

        let policy = self.replication
        let standbyTimeout = Duration.milliseconds(Int64(self.standbyTimeout * 1000))
        let primaryAddress = self.primaryAddress
        /// Makes the node a primary that takes a standby.
        @Sendable func enableReplication(_ node: StorageNode, _ term: UInt64) throws {
            let control: any ReplicationControl =
                etcdClient.map { EtcdReplicationControl(client: $0, keys: keys, nodeID: nodeID) }
                ?? LocalReplicationControl(logger: logger)
            try node.enableReplication(
                term: term, policy: policy, control: control, standbyTimeout: standbyTimeout,
                onFenced: { reason in Task { await fenced(reason) } })
        }

        /// Joins the gateways and holds the node's membership in etcd: what a primary does once it listens (or once a
        /// standby took over).
        /// The closure returns whether the node serves (`false`: it was refused, or replaced, and stops).
        @Sendable func makePrimaryServing(_ boundPort: Int) -> @Sendable (UInt64) async -> Bool {
            { term in
                if let directory, let node = shared.nodeBox.withLock({ $0 }) {
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
                        shared.refusal.withLock { $0 = "durable node \(nodeID) could not join \(gateways): \(reason)" }
                        await shared.group.withLock({ $0 })?.triggerGracefulShutdown()
                        return false
                    case .unreachable:
                        logger.error(
                            "could not join a gateway; serving without it",
                            metadata: ["gateways": "\(directory.client.endpoints.map(\.description))"])
                    }
                }
                if let etcdClient, let node = shared.nodeBox.withLock({ $0 }) {
                    // Alive for the gateways while this process renews its lease.
                    let record: @Sendable (Int) -> EtcdPlacementStore.MemberRecord = { active in
                        EtcdPlacementStore.MemberRecord(
                            address: advertise ?? "\(host):\(boundPort)", databaseIdentity: node.databaseIdentity,
                            activeObjects: active)
                    }
                    // Only while etcd names this node primary at its term: a primary that was replaced while away
                    // cannot come back as a member.
                    let member = LeasedKey(
                        client: etcdClient, key: EtcdPlacementStore.memberKey(cluster: cluster, nodeID: nodeID),
                        value: record(node.runtime.activeCount).bytes, ttl: leaseTTL,
                        conditions: [
                            Transaction.Comparison(key: keys.term(nodeID), .value(NodeTerm.primary(term).bytes))
                        ],
                        logger: logger)
                    // With a standby, the node serves only while its lease is confirmed: once it may have
                    // expired, the standby may have taken over.
                    node.setServingCheck { [weak node] in
                        guard node?.replication?.standby != nil else { return nil }
                        guard let until = member.confirmedUntil, ContinuousClock.now < until else {
                            return "Node \(nodeID) has no confirmed lease in etcd: it serves nothing until it has one."
                        }
                        return nil
                    }
                    do {
                        try await member.acquire()
                    } catch LeasedKeyError.conditionFailed {
                        await fenced("etcd no longer names it primary at term \(term)")
                        return false
                    } catch {
                        logger.warning("could not announce this node in etcd yet", metadata: ["error": "\(error)"])
                    }
                    logger.info("membership held in etcd", metadata: ["lease": "\(member.currentLease ?? 0)"])
                    shared.membership.withLock {
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
                            if member.conditionFailed {
                                await fenced("etcd no longer names it primary at term \(term)")
                            }
                        }
                    }
                }
                return true
            }
        }

        var nodeConfiguration = NodeConfiguration(
            host: host, port: port, dataDirectory: data, nodeID: nodeID, runtime: runtime,
            clusterSecret: secret, standbyFor: resolvedStandbyFor, standbyRejoining: resolvedRejoining)
        nodeConfiguration.tls = processTLS?.server
        nodeConfiguration.peerTLS = processTLS?.client
        let node = try StorageNode(
            configuration: nodeConfiguration,
            classes: app.classes, bindings: ConfigurationSource.defaultBindings(app: app),
            logger: logger,
            onStarted: { [logger] boundPort in
                let servePrimary = makePrimaryServing(boundPort)
                if let standbyFor = resolvedStandbyFor, let node = shared.nodeBox.withLock({ $0 }) {
                    // A standby owns no slot: it neither joins a gateway nor announces itself until it takes over.
                    logger.notice("serving as a standby", metadata: ["primary": "\(standbyFor)"])
                    let failover = StandbyFailover(
                        client: etcdClient, keys: keys, nodeID: nodeID, primary: standbyFor,
                        primaryAddress: primaryAddress, advertise: advertise ?? "\(host):\(boundPort)",
                        credentials: secret, tls: processTLS?.client, node: node, logger: logger)
                    let attaching = Task { await failover.keepAttached() }
                    shared.standbyTasks.withLock { $0.append(attaching) }
                    shared.standbyTasks.withLock {
                        $0.append(
                            Task {
                                guard let newTerm = await failover.waitToTakeOver() else { return }
                                attaching.cancel()
                                var taken: [UInt16] = []
                                do {
                                    try await node.promote(toTerm: newTerm)
                                    if let view {
                                        let slots = await StandbyFailover.takeSlots(
                                            of: standbyFor, to: nodeID, placement: view, logger: logger)
                                        try await node.takeSlots(slots)
                                        taken = slots.map(\.slot)
                                    }
                                    try enableReplication(node, newTerm)
                                } catch {
                                    logger.critical("could not take over", metadata: ["error": "\(error)"])
                                    shared.refusal.withLock {
                                        $0 = "durable node \(nodeID) could not take over: \(error)"
                                    }
                                    await shared.group.withLock({ $0 })?.triggerGracefulShutdown()
                                    return
                                }
                                guard await servePrimary(newTerm) else { return }
                                // The clients of the former primary's WebSockets reconnect (through the gateways
                                // this node has joined now) and reach this node.
                                await node.closeSockets(ofSlotsTakenOver: taken)
                                print("durable node \(nodeID) took over from \(standbyFor) at term \(newTerm)")
                                fflush(nil)
                            })
                    }
                    print("durable node \(nodeID) listening on \(host):\(boundPort) (standby for \(standbyFor))")
                    fflush(nil)
                    return
                }
                guard await servePrimary(resolvedTerm) else { return }
                // A line tools and tests can wait for.
                print("durable node \(nodeID) listening on \(host):\(boundPort)")
                fflush(nil)
            })
        shared.nodeBox.withLock { $0 = node }
        if resolvedStandbyFor == nil { try enableReplication(node, resolvedTerm) }
        if let directory {
            // In a cluster, an object's calls to other objects go through a gateway to their owners, and socket
            // frames to the gateway that holds the socket.
            try node.routeObjectCalls(through: directory.client)
            node.sendWebSocketFrames(through: directory.webSocketHub)
            directory.follow()
        }
        var services: [any Service] = [node]
        if let processTLS { services.append(CertificateReloader(tls: processTLS, logger: logger)) }
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
        if let spanExporter { services.insert(spanExporter, at: 0) }
        let serviceGroup = ServiceGroup(
            services: services, gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        shared.group.withLock { $0 = serviceGroup }
        try await serviceGroup.run()
        for task in shared.standbyTasks.withLock({ $0 }) { task.cancel() }
        node.replication?.stop()
        if let task = shared.membership.withLock({ $0 }) {
            task.cancel()
            await task.value
        }
        view?.close()
        await etcdClient?.close()
        await directory?.close()
        if let reason = shared.refusal.withLock({ $0 }) { throw CommandError(reason) }
    }
}

/// What the tasks of one `durable node` run share.
final class NodeRunState: Sendable {
    /// Why the node stops (the gateway refused it, or it was replaced): the command fails with it.
    let refusal = Mutex<String?>(nil)
    /// The task holding the node's membership in etcd.
    let membership = Mutex<Task<Void, Never>?>(nil)
    /// The service group the node runs in.
    let group = Mutex<ServiceGroup?>(nil)
    /// The node, once made.
    let nodeBox = Mutex<StorageNode?>(nil)
    /// A standby's tasks: attaching to its primary, waiting to take over.
    let standbyTasks = Mutex<[Task<Void, Never>]>([])
}
