import DurableEtcd
import DurableObjects
import Foundation
import Logging
import Synchronization

/// The binding registry kept in etcd, shared by every gateway of a cluster.
///
/// Keys, under `/durable/<cluster>/registry/`:
/// - `state`: the whole ``RegistryState`` (JSON), replaced by each publish in one transaction that requires the
///   state to be the one the publish was planned against (its modification revision); a publish that lost the race
///   to another plans again against the winner's state, so concurrent publishes apply one after the other;
/// - `identity`: the registry's identity, written once by whichever gateway came first.
///
/// Each gateway holds the state in memory and follows changes with a watch, calling its observers
/// (``onChange(_:)``) for the publishes of other gateways.
public final class EtcdRegistry: RegistryStore, Sendable {
    private let client: EtcdClient
    private let prefix: String
    private let logger: Logger
    /// The state and the etcd modification revision it was read at (0: no state stored yet).
    private let current: Mutex<(state: RegistryState, revision: Int64)>
    private let observers = Mutex<[@Sendable (RegistryState, RegistryState) -> Void]>([])
    private let watcher = Mutex<Task<Void, Never>?>(nil)

    /// The registry's identity, the same for every gateway of the cluster.
    public let identity: String

    private init(client: EtcdClient, prefix: String, identity: String, logger: Logger) {
        self.client = client
        self.prefix = prefix
        self.identity = identity
        self.logger = logger
        self.current = Mutex((RegistryState(), 0))
    }

    /// Reads the cluster's registry from etcd (making its identity when it has none) and starts following it.
    ///
    /// - Parameters:
    ///   - client: the etcd client.
    ///   - cluster: the cluster's name: clusters that share an etcd keep apart under it.
    ///   - logger: where changes and broken watches are logged.
    /// - Throws: ``EtcdError`` when etcd cannot be read, or an error naming the key when the stored state does not
    ///   decode.
    public static func open(client: EtcdClient, cluster: String = "default", logger: Logger) async throws
        -> EtcdRegistry
    {
        let prefix = "/durable/\(cluster)/registry/"
        let identityKey = Array((prefix + "identity").utf8)
        let claim = try await client.transaction(
            Transaction(
                comparisons: [.absent(identityKey)],
                success: [.put(key: identityKey, value: Array(UUID().uuidString.lowercased().utf8), lease: nil)],
                failure: [.get(key: identityKey)]))
        let identity: String
        if claim.succeeded {
            guard let stored = try await client.get(identityKey) else {
                throw DurableObjectError(
                    .internal, "etcd lost the registry identity it just stored at \(prefix)identity.")
            }
            identity = String(decoding: stored.value, as: UTF8.self)
        } else {
            guard case .values(let values) = claim.responses.first, let stored = values.first else {
                throw DurableObjectError(.internal, "etcd answered the registry identity check without it.")
            }
            identity = String(decoding: stored.value, as: UTF8.self)
        }
        let registry = EtcdRegistry(client: client, prefix: prefix, identity: identity, logger: logger)
        let read = try await registry.read()
        registry.current.withLock { $0 = (read.state, read.revision) }
        registry.watcher.withLock { $0 = Task { await registry.follow(from: read.readAt + 1) } }
        return registry
    }

    /// Stops following etcd.
    public func close() {
        watcher.withLock { $0 }?.cancel()
    }

    deinit {
        watcher.withLock { $0 }?.cancel()
    }

    /// The state as this gateway last saw it.
    public var state: RegistryState { current.withLock { $0.state } }

    /// The modification revision in etcd of ``state`` (0 before the first publish).
    public var revision: Int64 { current.withLock { $0.revision } }

    /// Publishes against the state etcd has now, in one transaction that fails if another publish came first; then
    /// plans again against that one.
    public func publish(
        _ configuration: AppConfiguration, environment: String?, exportedClasses: Set<String>,
        migrations: [Migration]?, expectedTag: String?
    ) async throws -> [RegistryChange] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for attempt in 1...50 {
            let (state, revision, _) = try await read()
            let (next, changes) = try MigrationPlanner.publish(
                configuration, environment: environment, exportedClasses: exportedClasses, state: state,
                migrations: migrations, expectedTag: expectedTag)
            if next == state { return changes }  // nothing to write
            let key = stateKey
            let result = try await client.transaction(
                Transaction(
                    comparisons: [revision == 0 ? .absent(key) : .init(key: key, .modRevision(revision))],
                    success: [.put(key: key, value: Array(try encoder.encode(next)), lease: nil)]))
            if result.succeeded {
                adopt(next, revision: result.revision, notify: false)
                return changes
            }
            logger.debug("another publish came first; planning again", metadata: ["attempt": "\(attempt)"])
        }
        throw DurableObjectError(
            .aborted, "The registry changed under 50 publishes in a row; publish again.", retryable: true)
    }

    /// Adds an observer of other gateways' publishes.
    public func onChange(_ observer: @escaping @Sendable (_ before: RegistryState, _ after: RegistryState) -> Void) {
        observers.withLock { $0.append(observer) }
    }

    // MARK: Following etcd

    private var stateKey: [UInt8] { Array((prefix + "state").utf8) }

    /// The state etcd has now, its modification revision, and etcd's revision when it was read.
    private func read() async throws -> (state: RegistryState, revision: Int64, readAt: Int64) {
        let (values, readAt) = try await client.get(prefix: stateKey)
        guard let stored = values.first(where: { $0.key == stateKey }) else { return (RegistryState(), 0, readAt) }
        do {
            return (
                try JSONDecoder().decode(RegistryState.self, from: Data(stored.value)), stored.modRevision, readAt
            )
        } catch {
            throw DurableObjectError(
                .internal, "The registry state at \(prefix)state in etcd does not decode: \(error)")
        }
    }

    /// Takes `state` (at `revision`) if it is newer than the one held; `notify`: tell the observers.
    private func adopt(_ state: RegistryState, revision: Int64, notify: Bool) {
        let before = current.withLock { current -> RegistryState? in
            guard revision > current.revision else { return nil }
            defer { current = (state, revision) }
            return current.state
        }
        guard let before, notify else { return }
        logger.info(
            "registry changed by another gateway",
            metadata: ["changes": "\(state.changes(since: before).map(\.description).joined(separator: "; "))"])
        for observer in observers.withLock({ $0 }) { observer(before, state) }
    }

    /// Applies the registry's changes as they come; after a broken watch, reads it again and watches on.
    private func follow(from revision: Int64) async {
        var next = revision
        var delay = Duration.milliseconds(100)
        while !Task.isCancelled {
            do {
                for try await events in client.watch(prefix: stateKey, fromRevision: next) {
                    for event in events where event.kind == .put {
                        guard
                            let state = try? JSONDecoder().decode(RegistryState.self, from: Data(event.keyValue.value))
                        else {
                            logger.error("a registry state in etcd does not decode; ignored")
                            continue
                        }
                        adopt(state, revision: event.keyValue.modRevision, notify: true)
                    }
                    if let last = events.last { next = last.keyValue.modRevision + 1 }
                    delay = .milliseconds(100)
                }
            } catch {
                if Task.isCancelled { return }
                logger.notice("the etcd watch of the registry broke; reading it again", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
                if let (state, revision, readAt) = try? await read() {
                    adopt(state, revision: revision, notify: true)
                    next = readAt + 1
                }
            }
        }
    }
}
