import DurableObjects

/// Where the cluster keeps its binding registry: the namespaces, their secrets, the applied migrations and each
/// script's bindings and vars. Every gateway reads it from memory; a publish is one atomic change of the whole
/// state, planned against the state it replaces (``MigrationPlanner``), so two publishes never interleave their
/// migrations.
///
/// Two implementations: ``Registry`` (the gateway's own RocksDB, for a single gateway) and ``EtcdRegistry`` (etcd,
/// shared by every gateway of a cluster).
public protocol RegistryStore: Sendable {
    /// The registry's identity, handed to every node that registers so that a node can tell this registry from
    /// another one.
    var identity: String { get }

    /// The current state.
    var state: RegistryState { get }

    /// Publishes `configuration` for `environment` and returns what changed; nothing is applied when it throws.
    ///
    /// - Parameters:
    ///   - configuration: the app's configuration.
    ///   - environment: the environment published (`nil`: the top level).
    ///   - exportedClasses: the object classes the app provides.
    ///   - migrations: migrations to apply instead of the configuration's (the deprecated command-line flags).
    ///   - expectedTag: `--old-tag`: the last tag the script must have applied.
    /// - Throws: ``MigrationPlanner/PublishError`` or ``ConfigurationError`` (nothing applied), or the store's error.
    func publish(
        _ configuration: AppConfiguration, environment: String?, exportedClasses: Set<String>,
        migrations: [Migration]?, expectedTag: String?
    ) async throws -> [RegistryChange]

    /// Calls `observer` with the state before and after each change this store learns of from elsewhere (another
    /// gateway's publish), in order; not for the publishes made through this store.
    func onChange(_ observer: @escaping @Sendable (_ before: RegistryState, _ after: RegistryState) -> Void)
}

extension RegistryStore {
    /// Publishes `configuration` for `environment` with its own migrations and no tag check.
    public func publish(
        _ configuration: AppConfiguration, environment: String?, exportedClasses: Set<String>
    ) async throws -> [RegistryChange] {
        try await publish(
            configuration, environment: environment, exportedClasses: exportedClasses, migrations: nil,
            expectedTag: nil)
    }
}

extension RegistryState {
    /// What changed from `before` to this state in the namespaces (created, moved and deleted), for the nodes to
    /// follow a change another gateway published.
    public func changes(since before: RegistryState) -> [RegistryChange] {
        var changes: [RegistryChange] = []
        for (id, namespace) in namespaces.sorted(by: { $0.key < $1.key }) {
            if let old = before.namespaces[id] {
                if old.script != namespace.script || old.className != namespace.className {
                    changes.append(.moved(namespaceID: id, toScript: namespace.script, toClass: namespace.className))
                }
            } else {
                changes.append(.created(namespaceID: id, className: namespace.className))
            }
        }
        for id in before.namespaces.keys.sorted() where namespaces[id] == nil {
            changes.append(.deleted(namespaceID: id))
        }
        return changes
    }
}
