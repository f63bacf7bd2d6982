import DurableObjects
import DurableStorage
import Foundation
import Synchronization

/// The binding registry kept in the gateway's own RocksDB database (the embedded ``RegistryStore``, for a cluster
/// with one gateway).
///
/// Publishes are serialized: each one is planned against the current state (``MigrationPlanner``), and the new
/// state is written with a synced write before the publish returns, so a registry change that was acknowledged
/// survives a crash. A refused publish changes nothing.
public final class Registry: RegistryStore, Sendable {
    private static let stateKey = Array("registry/state".utf8)
    private static let identityKey = Array("registry/identity".utf8)

    private let database: Database
    private let family: ColumnFamily
    private let current: Mutex<RegistryState>

    /// The registry's identity: made when the gateway's database was created (or first opened by a version that
    /// knew identities), and handed to every node that registers, so that a node can tell this registry from another.
    public let identity: String

    /// Opens the registry stored in `database` (an empty one when there is none yet).
    ///
    /// - Throws: a storage error, or an error naming the key when the stored state does not decode.
    public init(database: Database) throws {
        self.database = database
        family = try database.ensureColumnFamily(named: "registry")
        var state = RegistryState()
        if let bytes = try database.get(Self.stateKey, in: family) {
            do {
                state = try JSONDecoder().decode(RegistryState.self, from: Data(bytes))
            } catch {
                throw StorageError(.invalidArgument, "the registry state in \(database.path) does not decode: \(error)")
            }
        }
        current = Mutex(state)
        identity = try DatabaseIdentity.loadOrCreate(in: database, family: family, key: Self.identityKey).identity
    }

    /// The current state.
    public var state: RegistryState { current.withLock { $0 } }

    /// Publishes `configuration` for `environment` and returns what changed (`migrations` and `expectedTag`: see
    /// ``MigrationPlanner/publish(_:environment:exportedClasses:state:migrations:expectedTag:makeKey:)``).
    ///
    /// - Throws: ``MigrationPlanner/PublishError`` or ``ConfigurationError`` (nothing applied), or a storage error.
    public func publish(
        _ configuration: AppConfiguration, environment: String?, exportedClasses: Set<String>,
        migrations: [Migration]? = nil, expectedTag: String? = nil
    ) throws -> [RegistryChange] {
        try current.withLock { state in
            let (next, changes) = try MigrationPlanner.publish(
                configuration, environment: environment, exportedClasses: exportedClasses, state: state,
                migrations: migrations, expectedTag: expectedTag)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            var batch = WriteBatch()
            batch.put(Array(try encoder.encode(next)), forKey: Self.stateKey, in: family)
            try database.write(batch, sync: true)
            state = next
            return changes
        }
    }

    /// Nothing but this gateway writes its database: `observer` is never called.
    public func onChange(_ observer: @escaping @Sendable (_ before: RegistryState, _ after: RegistryState) -> Void) {}
}
