import DurableObjects

/// Applies a publish to the registry state: pending migrations in order, exactly once per environment, then the
/// environment's bindings, with the errors the contract article of DurableObjects (`Semantics.md`) lists.
public enum MigrationPlanner {
    /// An error a publish is refused with (nothing of it is applied).
    public struct PublishError: Error, Hashable, Sendable, CustomStringConvertible {
        /// The message, in the original platform's words where it has them.
        public var message: String
        /// Creates an error.
        public init(_ message: String) { self.message = message }
        /// The message.
        public var description: String { message }
    }

    /// The state after publishing `configuration` for `environment` (the top level when `nil`), and what changed.
    ///
    /// - Parameters:
    ///   - exportedClasses: the object classes the app provides.
    ///   - migrations: migrations to apply instead of the configuration's (the deprecated command-line flags);
    ///     the configuration's are then ignored. An override migration with an empty tag records no tag.
    ///   - expectedTag: with the command-line flags, `--old-tag`: the last tag the script must have applied
    ///     (`nil`: no check).
    ///   - makeKey: makes the secret of a new namespace.
    /// - Throws: ``PublishError`` or ``ConfigurationError``; the state is then unchanged.
    public static func publish(
        _ configuration: AppConfiguration, environment: String?, exportedClasses: Set<String>, state: RegistryState,
        migrations override: [Migration]? = nil, expectedTag: String? = nil,
        makeKey: () -> NamespaceKey = { NamespaceKey.random() }
    ) throws -> (state: RegistryState, changes: [RegistryChange]) {
        let script = configuration.scriptName(environment: environment)
        let bindings = try configuration.resolvedBindings(environment: environment)
        let migrations = override ?? configuration.migrations
        let original = state
        var state = state
        var changes: [RegistryChange] = []
        let applied = state.appliedTags[script] ?? []

        if let expectedTag, expectedTag != (applied.last ?? "") {
            throw PublishError(
                "--old-tag '\(expectedTag)' does not match the last migration tag of script '\(script)', which is \(applied.last.map { "'\($0)'" } ?? "none")."
            )
        }
        var pending = migrations[...]
        if let last = applied.last, override == nil {
            guard !migrations.isEmpty else {
                throw PublishError(
                    "Script '\(script)' has applied migrations (last tag '\(last)'), so every publish must carry its migrations; the configuration has none."
                )
            }
            guard let index = migrations.firstIndex(where: { $0.tag == last }) else {
                throw PublishError(
                    "The last migration applied to script '\(script)' has tag '\(last)', which is not among the configuration's migrations."
                )
            }
            pending = migrations[(index + 1)...]
        }

        for migration in pending {
            if !migration.tag.isEmpty && applied.contains(migration.tag) { continue }
            for className in migration.newClasses {
                guard exportedClasses.contains(className) else {
                    throw PublishError(
                        "Cannot apply new-class migration to class \(className) that is not exported by script")
                }
                guard state.namespace(script: script, className: className) == nil else {
                    throw PublishError(
                        "Cannot apply new-class migration to class \(className): it already implements Durable Objects in script \(script)."
                    )
                }
                state.namespaceCounter += 1
                let id = "\(script).\(className).\(state.namespaceCounter)"
                state.namespaces[id] = RegistryState.Namespace(
                    id: id, script: script, className: className, secret: makeKey().secret)
                state.forwards[RegistryState.classKey(script, className)] = nil
                changes.append(.created(namespaceID: id, className: className))
            }
            for rename in migration.renamedClasses {
                guard var namespace = state.namespace(script: script, className: rename.from) else {
                    throw PublishError(
                        "Cannot apply rename migration to class \(rename.from): it does not implement Durable Objects in script \(script)."
                    )
                }
                guard exportedClasses.contains(rename.to) else {
                    throw PublishError(
                        "Cannot apply rename migration to class \(rename.to) that is not exported by script")
                }
                guard !state.hasNamespace(script: script, className: rename.to) else {
                    throw PublishError(
                        "Cannot apply rename migration to class \(rename.to): it already implements Durable Objects in script \(script)."
                    )
                }
                namespace.className = rename.to
                state.namespaces[namespace.id] = namespace
                state.forwards[RegistryState.classKey(script, rename.from)] = RegistryState.classKey(script, rename.to)
                changes.append(.moved(namespaceID: namespace.id, toScript: script, toClass: rename.to))
            }
            for className in migration.deletedClasses {
                if bindings.contains(where: { $0.className == className && $0.scriptName == script }) {
                    throw PublishError(
                        "Cannot apply --delete-class migration to class \(className) without also removing the binding that references it"
                    )
                }
                guard let namespace = state.namespace(script: script, className: className) else {
                    throw PublishError(
                        "Cannot apply --delete-class migration to class \(className): it does not implement Durable Objects in script \(script)."
                    )
                }
                state.namespaces[namespace.id] = nil
                let key = RegistryState.classKey(namespace.script, namespace.className)
                state.forwards = state.forwards.filter { $0.value != key && $0.key != key }
                changes.append(.deleted(namespaceID: namespace.id))
            }
            for transfer in migration.transferredClasses {
                guard var namespace = state.namespace(script: transfer.fromScript, className: transfer.from) else {
                    throw PublishError(
                        "Cannot apply transfer migration from class \(transfer.from) of script \(transfer.fromScript): it does not implement Durable Objects there."
                    )
                }
                guard exportedClasses.contains(transfer.to) else {
                    throw PublishError(
                        "Cannot apply transfer migration to class \(transfer.to) that is not exported by script")
                }
                guard !state.hasNamespace(script: script, className: transfer.to) else {
                    throw PublishError(
                        "Cannot apply transfer migration to class \(transfer.to): it already implements Durable Objects in script \(script)."
                    )
                }
                namespace.script = script
                namespace.className = transfer.to
                state.namespaces[namespace.id] = namespace
                state.forwards[RegistryState.classKey(transfer.fromScript, transfer.from)] =
                    RegistryState.classKey(script, transfer.to)
                changes.append(.moved(namespaceID: namespace.id, toScript: script, toClass: transfer.to))
            }
            if !migration.tag.isEmpty { state.appliedTags[script, default: []].append(migration.tag) }
        }

        for binding in bindings where state.namespace(for: binding, script: script) == nil {
            throw PublishError(
                "Cannot create binding for class '\(binding.className)' because it is not currently configured to implement Durable Objects. Ensure a --new-class migration has been applied to it."
            )
        }
        state.bindings[script] = bindings
        if state.vars?[script] != configuration.resolvedVars(environment: environment) {
            var vars = state.vars ?? [:]
            vars[script] = configuration.resolvedVars(environment: environment)
            state.vars = vars
        }
        // A publish that changes nothing leaves the state as it was, revision included.
        if state != original { state.revision = (original.revision ?? 0) + 1 }
        return (state, changes)
    }
}
