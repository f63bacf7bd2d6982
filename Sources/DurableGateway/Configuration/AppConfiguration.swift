/// An app's configuration, as `durable.toml` states it (modelled on `wrangler.toml`; see the contract article of
/// DurableObjects, `Semantics.md`).
public struct AppConfiguration: Sendable, Equatable {
    /// The app's (top-level script's) name.
    public var name: String
    /// The top-level bindings.
    public var bindings: [BindingConfiguration]
    /// The environments by name; their bindings are not inherited from the top level.
    public var environments: [String: EnvironmentConfiguration]
    /// The migrations, in order; inherited by every environment.
    public var migrations: [Migration]
    /// The top-level `[vars]`: plain text the worker reads as `env.vars`.
    public var vars: [String: String]

    /// Creates a configuration.
    public init(
        name: String, bindings: [BindingConfiguration] = [], environments: [String: EnvironmentConfiguration] = [:],
        migrations: [Migration] = [], vars: [String: String] = [:]
    ) {
        self.name = name
        self.bindings = bindings
        self.environments = environments
        self.migrations = migrations
        self.vars = vars
    }

    /// The `[vars]` of `environment` (the top level when `nil`); like bindings, they are not inherited.
    public func resolvedVars(environment: String?) -> [String: String] {
        guard let environment else { return vars }
        return environments[environment]?.vars ?? [:]
    }

    /// The script an environment publishes as: the app's name, or `<name>-<env>` for an environment.
    public func scriptName(environment: String?) -> String {
        guard let environment else { return name }
        return "\(name)-\(environment)"
    }

    /// The bindings of `environment` (the top level when `nil`), with `script_name` filled in.
    ///
    /// - Throws: ``ConfigurationError`` when the environment is not declared.
    public func resolvedBindings(environment: String?) throws -> [BindingConfiguration] {
        let script = scriptName(environment: environment)
        let declared: [BindingConfiguration]
        if let environment {
            guard let configuration = environments[environment] else {
                throw ConfigurationError(
                    file: "durable.toml", key: "env.\(environment)",
                    message:
                        "no environment named '\(environment)' (declared: \(environments.keys.sorted().joined(separator: ", ")))"
                )
            }
            declared = configuration.bindings
        } else {
            declared = bindings
        }
        return declared.map { binding in
            var resolved = binding
            if resolved.scriptName == nil { resolved.scriptName = script }
            return resolved
        }
    }
}

/// One environment's settings.
public struct EnvironmentConfiguration: Sendable, Equatable {
    /// Its bindings (not inherited from the top level).
    public var bindings: [BindingConfiguration]
    /// Its `[env.NAME.vars]` (not inherited from the top level).
    public var vars: [String: String] = [:]

    /// Creates an environment.
    public init(bindings: [BindingConfiguration] = []) { self.bindings = bindings }
}

/// A Durable Object binding: a name the worker sees, bound to a class of a script.
public struct BindingConfiguration: Sendable, Equatable, Codable {
    /// The name in `env`, e.g. `COUNTER`.
    public var name: String
    /// The class implementing the objects.
    public var className: String
    /// The script that owns the class; the environment's own script when `nil`.
    public var scriptName: String?

    /// Creates a binding.
    public init(name: String, className: String, scriptName: String? = nil) {
        self.name = name
        self.className = className
        self.scriptName = scriptName
    }
}

/// One step of the ordered migration list.
public struct Migration: Sendable, Equatable, Codable {
    /// A class renamed within the script.
    public struct Rename: Sendable, Equatable, Codable {
        /// The old class name.
        public var from: String
        /// The new class name.
        public var to: String
        /// Creates a rename.
        public init(from: String, to: String) {
            self.from = from
            self.to = to
        }
    }

    /// A class moved here from another script.
    public struct Transfer: Sendable, Equatable, Codable {
        /// The class name in the other script.
        public var from: String
        /// The other script.
        public var fromScript: String
        /// The class name here.
        public var to: String
        /// Creates a transfer.
        public init(from: String, fromScript: String, to: String) {
            self.from = from
            self.fromScript = fromScript
            self.to = to
        }
    }

    /// The unique tag of the migration.
    public var tag: String
    /// Classes that start implementing Durable Objects.
    public var newClasses: [String]
    /// Classes renamed; their objects follow.
    public var renamedClasses: [Rename]
    /// Classes whose objects and data are deleted.
    public var deletedClasses: [String]
    /// Classes moved from other scripts; their objects follow.
    public var transferredClasses: [Transfer]

    /// Creates a migration.
    public init(
        tag: String, newClasses: [String] = [], renamedClasses: [Rename] = [], deletedClasses: [String] = [],
        transferredClasses: [Transfer] = []
    ) {
        self.tag = tag
        self.newClasses = newClasses
        self.renamedClasses = renamedClasses
        self.deletedClasses = deletedClasses
        self.transferredClasses = transferredClasses
    }
}

/// A configuration that cannot be used: names the file, the key and what is wrong.
public struct ConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The file.
    public var file: String
    /// The key path, e.g. `durable_objects.bindings[0].class_name`.
    public var key: String
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(file: String, key: String, message: String) {
        self.file = file
        self.key = key
        self.message = message
    }

    /// `file: key: message`.
    public var description: String { key.isEmpty ? "\(file): \(message)" : "\(file): \(key): \(message)" }
}
