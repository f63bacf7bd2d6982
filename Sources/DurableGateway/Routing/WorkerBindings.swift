import DurableClient
import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Synchronization

/// The bindings of the script the gateway serves: what `ResolveBinding` answers, what the worker's environment
/// holds, and which namespace a binding of another environment reaches (for the operator methods).
final class WorkerBindings: Sendable {
    private let registry: any RegistryStore
    /// The gateway's environment (`--env`), `nil` for the top level.
    let environment: String?
    private let transport: RoutingTransport
    /// The script whose bindings `ResolveBinding` answers with (set by the publish of the gateway's environment).
    private let script = Mutex<String?>(nil)
    /// The served script's `[vars]`, from its last publish.
    private let vars = Mutex<[String: String]>([:])
    /// The worker's environment and the registry revision it was made from, made again after each publish (a
    /// worker that read an older state while a publish landed cannot leave it cached: the revision tells).
    private let cachedEnvironment = Mutex<(revision: UInt64?, environment: Environment)?>(nil)

    init(registry: any RegistryStore, environment: String?, transport: RoutingTransport) {
        self.registry = registry
        self.environment = environment
        self.transport = transport
    }

    /// A publish changed the registry (through this gateway or another): `served` (the script and vars of the
    /// gateway's environment) when the publish was through this gateway and for its environment.
    func published(served: (script: String, vars: [String: String])?) {
        if let served {
            script.withLock { $0 = served.script }
            vars.withLock { $0 = served.vars }
        }
        cachedEnvironment.withLock { $0 = nil }
    }

    /// The script served: the one published for the gateway's environment, else the only one there is.
    private func servedScript(_ state: RegistryState) -> String? {
        script.withLock { $0 } ?? (state.bindings.count == 1 ? state.bindings.keys.first : nil)
    }

    /// `Objects/ResolveBinding`.
    ///
    /// - Throws: `NOT_FOUND` naming the bindings there are.
    func resolve(_ request: Durable_V1_ResolveBindingRequest) throws -> Durable_V1_ResolveBindingResponse {
        let state = registry.state
        let script = servedScript(state)
        let bindings = script.flatMap { state.bindings[$0] } ?? []
        guard let script, let binding = bindings.first(where: { $0.name == request.binding }),
            let namespace = state.namespace(for: binding, script: script)
        else {
            let known = bindings.map(\.name).sorted().joined(separator: ", ")
            throw RPCError(.notFound, "No Durable Object binding named '\(request.binding)' (bindings: \(known)).")
        }
        return Durable_V1_ResolveBindingResponse.with {
            $0.namespaceID = namespace.id
            $0.className = namespace.className
            $0.idKey = Data(namespace.secret)
        }
    }

    /// The bindings of the served script, with a transport that routes like RPC invocations.
    func workerEnvironment() -> Environment {
        let state = registry.state
        if let cached = cachedEnvironment.withLock({ $0 }), cached.revision == state.revision {
            return cached.environment
        }
        let script = servedScript(state)
        var namespaces: [String: DurableObjectNamespace] = [:]
        for binding in script.flatMap({ state.bindings[$0] }) ?? [] {
            guard let script, let namespace = state.namespace(for: binding, script: script) else { continue }
            namespaces[binding.name] = DurableObjectNamespace(
                namespaceID: namespace.id, className: namespace.className, key: NamespaceKey(secret: namespace.secret),
                transport: transport)
        }
        // The registry keeps every script's vars (a publish through another gateway changes them too); a state
        // written before it kept them has only the ones this gateway published.
        let servedVars = script.flatMap { state.vars?[$0] } ?? vars.withLock { $0 }
        let environment = Environment(namespaces: namespaces, vars: servedVars)
        cachedEnvironment.withLock { $0 = (state.revision, environment) }
        return environment
    }

    /// The namespace a binding reaches in an environment ("" or the gateway's own: the bindings `ResolveBinding`
    /// answers with).
    func namespace(binding: String, environment: String) throws -> RegistryState.Namespace {
        let state = registry.state
        let served = servedScript(state)
        var scriptName = served
        if !environment.isEmpty, environment != self.environment, let served {
            let base = self.environment.map { String(served.dropLast($0.count + 1)) } ?? served
            scriptName = "\(base)-\(environment)"
        }
        guard let scriptName, let bindings = state.bindings[scriptName] else {
            let which = environment.isEmpty ? "the served environment" : "environment '\(environment)'"
            throw RPCError(.notFound, "No bindings are published for \(which).")
        }
        guard let found = bindings.first(where: { $0.name == binding }),
            let namespace = state.namespace(for: found, script: scriptName)
        else {
            let known = bindings.map(\.name).sorted().joined(separator: ", ")
            throw RPCError(.notFound, "No Durable Object binding named '\(binding)' (bindings: \(known)).")
        }
        return namespace
    }
}
