import DurableEtcd
import DurableObjects
import DurableStorage
import Foundation
import Logging
import Synchronization

/// Where a cluster keeps what its gateways share: the binding registry (``RegistryStore``), the placement of slots
/// and nodes (``PlacementStore``) and which gateways are alive.
///
/// Two implementations: ``EmbeddedClusterStore`` (the gateway's own RocksDB: one gateway, nothing else to run)
/// and ``EtcdClusterStore`` (etcd: any number of gateways, nodes alive under leases).
public protocol ClusterStore: Sendable {
    /// The binding registry.
    var registry: any RegistryStore { get }
    /// The placement of slots and nodes.
    var placement: any PlacementStore { get }
    /// The gateways alive now: session → RPC address (a gateway's own session once it announced itself).
    var liveGateways: [String: String] { get }
    /// Marks this gateway alive, with its session (the prefix of the ids of its client WebSockets) and the address
    /// nodes reach it at, until ``close()``.
    ///
    /// - Parameters:
    ///   - session: the gateway's session.
    ///   - address: the gateway's RPC address (`host:port`).
    func announceGateway(session: String, address: String) async throws
    /// Withdraws the gateway's announcement and stops following the store.
    func close() async
    /// Calls `observer` with the session of each gateway that leaves the cluster (its lease ended): its client
    /// WebSockets are gone, and the nodes should close their side.
    func onGatewayDeparture(_ observer: @escaping @Sendable (_ session: String) -> Void)
    /// What the store knows of the cluster's health, for `durable cluster status`.
    func describe() async -> ClusterStoreDescription
}

/// What a cluster store says of the cluster's health.
public struct ClusterStoreDescription: Sendable {
    /// `embedded` or `etcd`.
    public var kind: String
    /// Each etcd member's status, or why it did not answer (etcd only).
    public var etcdMembers: [(endpoint: String, status: Result<MemberStatus, EtcdError>)] = []
    /// The nodes whose lease is alive; `nil` when the store has no leases (embedded).
    public var liveNodes: Set<String>?
    /// Each live node's lease: seconds left and the TTL it was granted with.
    public var leases: [String: (remaining: Int64, granted: Int64)] = [:]
    /// Each replicated node's role and, for a primary, the record of its standby (etcd only), by node id.
    public var replication: [(nodeID: String, role: NodeTerm, record: ReplicationRecord?)] = []

    /// A description of a store of `kind`.
    public init(kind: String) { self.kind = kind }
}

/// The cluster store of a single gateway: registry and placement in the gateway's own RocksDB database.
public final class EmbeddedClusterStore: ClusterStore, Sendable {
    /// The registry, in the gateway's database.
    public let registry: any RegistryStore
    /// The placement table, in the gateway's database.
    public let placement: any PlacementStore
    private let announced = Mutex<[String: String]>([:])

    /// Opens the registry and placement kept in `database`.
    ///
    /// - Throws: a storage error, or an error naming what does not decode.
    public init(database: Database) throws {
        registry = try Registry(database: database)
        placement = try PlacementTable(database: database)
    }

    /// This gateway, once announced: no other gateway shares its database.
    public var liveGateways: [String: String] { announced.withLock { $0 } }

    /// Remembers this gateway's session (there is no one else to tell).
    public func announceGateway(session: String, address: String) async throws {
        announced.withLock { $0 = [session: address] }
    }

    /// Forgets the announcement; the database is the gateway's to close.
    public func close() async {
        announced.withLock { $0 = [:] }
    }

    /// No other gateway shares the store: `observer` is never called.
    public func onGatewayDeparture(_ observer: @escaping @Sendable (_ session: String) -> Void) {}

    /// An embedded store has no members and no leases.
    public func describe() async -> ClusterStoreDescription {
        ClusterStoreDescription(kind: "embedded")
    }
}

/// The cluster store shared through etcd: ``EtcdRegistry``, ``EtcdPlacementStore``, and each gateway's key
/// `gateways/<session>` held under a lease it renews (``LeasedKey``), so that nodes and other gateways know which
/// gateways are alive and where they listen.
public final class EtcdClusterStore: ClusterStore, Sendable {
    /// The client, owned by the store (closed by ``close()``).
    public let client: EtcdClient
    /// The cluster's name in etcd.
    public let cluster: String
    /// The registry in etcd.
    public let etcdRegistry: EtcdRegistry
    /// The placement in etcd.
    public let etcdPlacement: EtcdPlacementStore
    private let leaseTTL: Int
    private let logger: Logger
    private let announcement = Mutex<Task<Void, Never>?>(nil)

    /// The registry in etcd.
    public var registry: any RegistryStore { etcdRegistry }
    /// The placement in etcd.
    public var placement: any PlacementStore { etcdPlacement }

    private init(
        client: EtcdClient, cluster: String, registry: EtcdRegistry, placement: EtcdPlacementStore, leaseTTL: Int,
        logger: Logger
    ) {
        self.client = client
        self.cluster = cluster
        self.etcdRegistry = registry
        self.etcdPlacement = placement
        self.leaseTTL = leaseTTL
        self.logger = logger
    }

    /// Reads the cluster's registry and placement from etcd and starts following them.
    ///
    /// - Parameters:
    ///   - client: the etcd client; the store closes it when it closes.
    ///   - cluster: the cluster's name: clusters that share an etcd keep apart under it.
    ///   - leaseTTL: seconds a gateway's announcement outlives its last renewal.
    ///   - logger: where the store logs.
    /// - Throws: ``EtcdError`` when etcd cannot be read.
    public static func open(client: EtcdClient, cluster: String = "default", leaseTTL: Int = 3, logger: Logger)
        async throws -> EtcdClusterStore
    {
        let registry = try await EtcdRegistry.open(client: client, cluster: cluster, logger: logger)
        do {
            let placement = try await EtcdPlacementStore.open(client: client, cluster: cluster, logger: logger)
            return EtcdClusterStore(
                client: client, cluster: cluster, registry: registry, placement: placement, leaseTTL: leaseTTL,
                logger: logger)
        } catch {
            registry.close()
            throw error
        }
    }

    /// The gateways whose lease is alive.
    public var liveGateways: [String: String] { etcdPlacement.liveGateways }

    /// Holds `gateways/<session>` under a lease, renewed until ``close()``.
    public func announceGateway(session: String, address: String) async throws {
        let key = LeasedKey(
            client: client, key: EtcdPlacementStore.gatewayKey(cluster: cluster, session: session),
            value: Array(address.utf8), ttl: leaseTTL, logger: logger)
        try await key.acquire()
        etcdPlacement.noteGateway(session: session, address: address)
        announcement.withLock { $0 = Task { await key.run() } }
    }

    /// Calls `observer` when a gateway's key goes from etcd.
    public func onGatewayDeparture(_ observer: @escaping @Sendable (_ session: String) -> Void) {
        etcdPlacement.onGatewayDeparture(observer)
    }

    /// Asks every etcd member for its status, and etcd for the lease of each live node.
    public func describe() async -> ClusterStoreDescription {
        var description = ClusterStoreDescription(kind: "etcd")
        for endpoint in client.endpoints {
            do {
                description.etcdMembers.append((endpoint, .success(try await client.status(of: endpoint))))
            } catch let error as EtcdError {
                description.etcdMembers.append((endpoint, .failure(error)))
            } catch {
                description.etcdMembers.append((endpoint, .failure(EtcdError(message: "\(error)"))))
            }
        }
        description.liveNodes = etcdPlacement.liveNodes
        if let members = try? await client.get(prefix: Array("/durable/\(cluster)/members/".utf8)).values {
            for member in members where member.lease != 0 {
                let nodeID = String(String(decoding: member.key, as: UTF8.self).split(separator: "/").last ?? "")
                if let lease = try? await client.timeToLive(lease: member.lease) { description.leases[nodeID] = lease }
            }
        }
        let keys = ReplicationKeys(cluster: cluster)
        if let terms = try? await client.get(prefix: keys.terms).values {
            let records = Dictionary(
                ((try? await client.get(prefix: keys.records).values) ?? []).map { ($0.key, $0.value) }
            ) { first, _ in first }
            for term in terms {
                let nodeID = String(decoding: term.key.dropFirst(keys.terms.count), as: UTF8.self)
                guard let role = NodeTerm(term.value) else { continue }
                let record = records[keys.record(nodeID)].flatMap {
                    try? JSONDecoder().decode(ReplicationRecord.self, from: Data($0))
                }
                description.replication.append((nodeID, role, record))
            }
        }
        return description
    }

    /// Revokes the gateway's lease (its key goes at once), stops following etcd and closes the client.
    public func close() async {
        if let task = announcement.withLock({ $0 }) {
            task.cancel()
            await task.value
        }
        etcdRegistry.close()
        etcdPlacement.close()
        await client.close()
    }
}
