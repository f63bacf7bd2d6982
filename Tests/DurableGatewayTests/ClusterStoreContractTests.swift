import DurableEtcd
import DurableGateway
import DurableObjects
import DurableStorage
import Foundation
import Logging
import Synchronization
import TestSupport
import Testing

/// What every cluster store promises, checked against both: the embedded one (the gateway's RocksDB) and etcd (a
/// real member started by the test). "Two gateways" are two stores on the same backing: for the embedded store,
/// the same store twice (one gateway is all it serves).
@Suite("Cluster store contract (embedded and etcd)")
struct ClusterStoreContractTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case embedded, etcd
        var testDescription: String { rawValue }
    }

    private static var logger: Logger {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }

    /// Runs `body` with two stores of `kind` on one fresh backing.
    private func withStores(
        _ kind: Kind, _ body: (any ClusterStore, any ClusterStore) async throws -> Void
    ) async throws {
        let folder = TemporaryDirectory("cluster-store")
        switch kind {
        case .embedded:
            let database = try Database(path: folder.child("gateway"))
            let store = try EmbeddedClusterStore(database: database)
            defer { database.close() }
            try await body(store, store)
            await store.close()
        case .etcd:
            let member = try await EtcdProcess.start(dataDirectory: folder.child("member"))
            let first = try await EtcdClusterStore.open(
                client: try EtcdClient(endpoints: [member.clientURL], requestTimeout: .seconds(30)), leaseTTL: 30,
                logger: Self.logger)
            let second = try await EtcdClusterStore.open(
                client: try EtcdClient(endpoints: [member.clientURL], requestTimeout: .seconds(30)), leaseTTL: 30,
                logger: Self.logger)
            do {
                try await body(first, second)
            } catch {
                await first.close()
                await second.close()
                try await member.stop()
                throw error
            }
            await first.close()
            await second.close()
            try await member.stop()
        }
    }

    /// A configuration of script `script` whose one migration creates class `Counter`.
    private static func configuration(script: String, vars: String = "") throws -> AppConfiguration {
        try ConfigurationParser.parse(
            """
            name = "\(script)"
            \(vars)
            [durable_objects]
            bindings = [ { name = "COUNTER", class_name = "Counter" } ]
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter"]
            """)
    }

    @Test(
        "a publish is seen by every gateway with its namespaces, bindings and vars; a refused one changes nothing",
        arguments: Kind.allCases)
    func publishSeenEverywhere(kind: Kind) async throws {
        try await withStores(kind) { first, second in
            #expect(first.registry.identity == second.registry.identity, "one registry per cluster")
            let changes = try await first.registry.publish(
                try Self.configuration(script: "app", vars: "[vars]\nGREETING = \"hi\""), environment: nil,
                exportedClasses: ["Counter"])
            #expect(changes.count == 1)
            let namespace = try #require(first.registry.state.namespace(script: "app", className: "Counter"))
            #expect(
                await eventually { second.registry.state.namespace(script: "app", className: "Counter") == namespace })
            #expect(second.registry.state.vars?["app"] == ["GREETING": "hi"])
            #expect(second.registry.state.revision == 1)
            await #expect(throws: MigrationPlanner.PublishError.self) {
                _ = try await second.registry.publish(
                    try ConfigurationParser.parse("name = \"app\""), environment: nil, exportedClasses: ["Counter"])
            }
            #expect(first.registry.state.revision == 1, "the refused publish wrote nothing")
            // The same configuration again applies nothing and keeps the revision.
            #expect(
                try await second.registry.publish(
                    try Self.configuration(script: "app", vars: "[vars]\nGREETING = \"hi\""), environment: nil,
                    exportedClasses: ["Counter"]
                ).isEmpty)
            #expect(second.registry.state.revision == 1)
        }
    }

    @Test(
        "concurrent publishes through both gateways apply one after the other: none is lost", arguments: Kind.allCases)
    func concurrentPublishesNeverInterleave(kind: Kind) async throws {
        try await withStores(kind) { first, second in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<12 {
                    let store = index % 2 == 0 ? first : second
                    group.addTask {
                        _ = try await store.registry.publish(
                            try Self.configuration(script: "script-\(index)"), environment: nil,
                            exportedClasses: ["Counter"])
                    }
                }
                try await group.waitForAll()
            }
            for store in [first, second] {
                #expect(
                    await eventually { store.registry.state.revision == 12 }, "every publish counted once")
                let state = store.registry.state
                #expect(state.namespaces.count == 12, "no publish overwrote another's namespace")
                #expect(Set(state.namespaces.keys).count == 12 && state.namespaceCounter == 12)
                #expect(state.appliedTags.values.allSatisfy { $0 == ["v1"] } && state.appliedTags.count == 12)
            }
        }
    }

    @Test("another gateway's publish reaches the observers with the states before and after it", arguments: [Kind.etcd])
    func observersSeeOtherGatewaysPublishes(kind: Kind) async throws {
        try await withStores(kind) { first, second in
            let seen = Mutex<[[RegistryChange]]>([])
            second.registry.onChange { before, after in
                seen.withLock { $0.append(after.changes(since: before)) }
            }
            _ = try await first.registry.publish(
                try Self.configuration(script: "app"), environment: nil, exportedClasses: ["Counter"])
            #expect(await eventually { seen.withLock { $0.count } == 1 })
            let changes = seen.withLock { $0 }.first ?? []
            #expect(changes.count == 1)
            if case .created(_, let className) = changes.first { #expect(className == "Counter") }
            // Its own publishes do not call its observers.
            _ = try await second.registry.publish(
                try Self.configuration(script: "other"), environment: nil, exportedClasses: ["Counter"])
            #expect(await eventually { first.registry.state.revision == 2 })
            #expect(seen.withLock { $0.count } == 1)
        }
    }

    @Test("announced gateways are live for every gateway, and go when their store closes", arguments: Kind.allCases)
    func liveGateways(kind: Kind) async throws {
        try await withStores(kind) { first, second in
            try await first.announceGateway(session: "aaaa", address: "127.0.0.1:1001")
            #expect(await eventually { second.liveGateways["aaaa"] == "127.0.0.1:1001" })
            guard kind == .etcd else { return }
            try await second.announceGateway(session: "bbbb", address: "127.0.0.1:1002")
            #expect(await eventually { first.liveGateways == ["aaaa": "127.0.0.1:1001", "bbbb": "127.0.0.1:1002"] })
            await first.close()
            #expect(await eventually { second.liveGateways == ["bbbb": "127.0.0.1:1002"] }, "its lease was revoked")
        }
    }

    @Test("a new slot is recorded once, for the owner both gateways then route to", arguments: Kind.allCases)
    func slotsRecordedOnce(kind: Kind) async throws {
        try await withStores(kind) { first, second in
            _ = try await first.placement.register(
                nodeID: "node-1", address: "127.0.0.1:2001", databaseIdentity: "db-1", replacingLostNode: false)
            if case .etcd = kind, let store = first as? EtcdClusterStore {
                let (lease, _) = try await store.client.grantLease(ttl: 60)
                try await store.etcdPlacement.announceMember(nodeID: "node-1", address: "127.0.0.1:2001", lease: lease)
                #expect(await eventually { (second as? EtcdClusterStore)?.etcdPlacement.liveNodes == ["node-1"] })
            }
            let (reserved, isNew) = try first.placement.owner(of: 7)
            #expect(isNew && reserved.nodeID == "node-1")
            let recorded = try await first.placement.record(7)
            #expect(recorded == reserved)
            #expect(await eventually { second.placement.assignment(of: 7) == recorded })
            #expect(try second.placement.owner(of: 7).isNew == false)
            // A slot move's steps are compare-and-sets: a stale expectation writes nothing.
            let moving = SlotAssignment(nodeID: "node-1", epoch: 2, movingTo: "node-2")
            #expect(try await first.placement.replace(7, expected: moving, with: recorded) == false)
            #expect(try await first.placement.replace(7, expected: recorded, with: moving))
            #expect(await eventually { second.placement.assignment(of: 7) == moving })
            let moved = SlotAssignment(nodeID: "node-2", epoch: 2)
            #expect(try await second.placement.replace(7, expected: moving, with: moved))
            #expect(await eventually { first.placement.assignment(of: 7) == moved })
            #expect(first.placement.slots(of: "node-1").isEmpty && first.placement.slots(of: "node-2").count == 1)

            // A node that comes back with another database is refused by every gateway.
            await #expect(throws: DurableObjectError.self) {
                _ = try await second.placement.register(
                    nodeID: "node-1", address: "127.0.0.1:2001", databaseIdentity: "db-other",
                    replacingLostNode: false)
            }
        }
    }
}
