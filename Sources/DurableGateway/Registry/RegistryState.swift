import DurableObjects

/// What the registry knows: the namespaces (one per class that implements Durable Objects in a script), the
/// migration tags each script has applied, each script's bindings, and the forwards left by renames and
/// transfers so that bindings to an old class name keep reaching its objects.
public struct RegistryState: Codable, Sendable, Equatable {
    /// A live namespace.
    public struct Namespace: Codable, Sendable, Equatable {
        /// The namespace id; it names the column family of its objects on every node and never changes.
        public var id: String
        /// The script whose class implements it now.
        public var script: String
        /// The class that implements it now.
        public var className: String
        /// The secret of its ids.
        public var secret: [UInt8]

        /// The namespace as the runtime takes it.
        public var definition: NamespaceDefinition {
            NamespaceDefinition(id: id, className: className, key: NamespaceKey(secret: secret))
        }
    }

    /// Live namespaces by id.
    public var namespaces: [String: Namespace] = [:]
    /// Tags applied, in order, per script.
    public var appliedTags: [String: [String]] = [:]
    /// Bindings per script, with `script_name` resolved.
    public var bindings: [String: [BindingConfiguration]] = [:]
    /// `script/class` → `script/class` left by renames and transfers.
    public var forwards: [String: String] = [:]
    /// Numbers namespace ids.
    public var namespaceCounter = 0
    /// Counts publishes (each adds one): nodes ignore definitions older than the newest they applied. `nil` in a
    /// state written before it was counted.
    public var revision: UInt64?
    /// Each script's `[vars]` as last published (every gateway of a cluster serves the same ones). `nil` in a
    /// state written before they were kept.
    public var vars: [String: [String: String]]?

    /// An empty registry.
    public init() {}

    static func classKey(_ script: String, _ className: String) -> String { "\(script)/\(className)" }

    /// The namespace that `className` of `script` names now, following renames and transfers.
    public func namespace(script: String, className: String) -> Namespace? {
        var key = Self.classKey(script, className)
        var hops = 0
        while let forward = forwards[key], hops < 64 {
            key = forward
            hops += 1
        }
        return namespaces.values.first { Self.classKey($0.script, $0.className) == key }
    }

    /// Whether `className` of `script` has a namespace of its own (not one reached through a rename or transfer).
    public func hasNamespace(script: String, className: String) -> Bool {
        namespaces.values.contains { $0.script == script && $0.className == className }
    }

    /// The namespace a binding of `script` reaches.
    public func namespace(for binding: BindingConfiguration, script: String) -> Namespace? {
        namespace(script: binding.scriptName ?? script, className: binding.className)
    }
}

/// What a publish changed, for the nodes to follow.
public enum RegistryChange: Sendable, Equatable, CustomStringConvertible {
    /// A namespace began (its column family is created on first use).
    case created(namespaceID: String, className: String)
    /// A namespace's class or script changed; its objects and data stay where they are.
    case moved(namespaceID: String, toScript: String, toClass: String)
    /// A namespace was deleted: every node drops its column family.
    case deleted(namespaceID: String)
}

extension RegistryChange {
    /// One line, e.g. `created app.Counter.1 (Counter)`.
    public var description: String {
        switch self {
        case .created(let id, let className): "created \(id) (\(className))"
        case .moved(let id, let script, let className): "moved \(id) to \(script)/\(className)"
        case .deleted(let id): "deleted \(id)"
        }
    }
}
