import DurableObjects
import Logging

/// Applies a published configuration: the registry's migrations and bindings, the served script's environment, and
/// the nodes told of the result (namespaces of deleted classes dropped with their data).
final class GatewayPublisher: Sendable {
    private let registry: any RegistryStore
    private let exportedClasses: Set<String>
    private let bindings: WorkerBindings
    private let registrar: NodeRegistrar
    private let logger: Logger

    init(
        registry: any RegistryStore, exportedClasses: Set<String>, bindings: WorkerBindings, registrar: NodeRegistrar,
        logger: Logger
    ) {
        self.registry = registry
        self.exportedClasses = exportedClasses
        self.bindings = bindings
        self.registrar = registrar
        self.logger = logger
    }

    /// Publishes `app` for `environment`; see ``Gateway/publish(_:environment:migrations:expectedTag:)``.
    func publish(
        _ app: AppConfiguration, environment: String?, migrations: [Migration]?, expectedTag: String?
    ) async throws -> [RegistryChange] {
        let changes = try await registry.publish(
            app, environment: environment, exportedClasses: exportedClasses, migrations: migrations,
            expectedTag: expectedTag)
        let servesIt = environment == bindings.environment
        bindings.published(
            served: servesIt
                ? (app.scriptName(environment: environment), app.resolvedVars(environment: environment)) : nil)
        logger.info(
            "published",
            metadata: [
                "script": "\(app.scriptName(environment: environment))",
                "changes": "\(changes.map(\.description).joined(separator: "; "))",
            ])
        await registrar.pushDefinitions(
            dropping: changes.compactMap {
                if case .deleted(let id) = $0 { return id }
                return nil
            })
        return changes
    }
}
