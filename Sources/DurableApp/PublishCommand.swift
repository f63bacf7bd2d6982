import ArgumentParser
import DurableClient
import DurableGateway
import DurableObjects
import DurableWire
import Foundation

/// `durable publish`: sends the app's configuration to a running gateway, which applies its pending migrations and
/// bindings (or refuses the whole publish with the reason).
struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "publish",
        abstract: "Publish the app's durable.toml to a gateway: apply pending migrations, then the bindings."
    )

    @Option(help: "The configuration to publish (default: ./durable.toml, else the app's built-in one).")
    var config: String?

    @Option(help: "The environment to publish (default: the top level).")
    var env: String?

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    @Option(name: .customLong("old-tag"), help: "Deprecated: the migration tag the script must have now.")
    var oldTag: String?

    @Option(name: .customLong("new-tag"), help: "Deprecated: the tag to record for the flags' migration.")
    var newTag: String?

    @Option(name: .customLong("new-class"), help: "Deprecated: a class that begins to implement Durable Objects.")
    var newClasses: [String] = []

    @Option(name: .customLong("delete-class"), help: "Deprecated: a class whose objects and data are deleted.")
    var deletedClasses: [String] = []

    @Option(
        name: .customLong("rename-class"), parsing: .upToNextOption,
        help: ArgumentHelp("Deprecated: renames a class (its objects follow).", valueName: "from> <to"))
    var renamedClasses: [String] = []

    @Option(
        name: .customLong("transfer-class"), parsing: .upToNextOption,
        help: ArgumentHelp(
            "Deprecated: moves a class of another script here (its objects follow).",
            valueName: "from-script> <from-class> <to-class"))
    var transferredClasses: [String] = []

    /// Whether any of the deprecated migration flags was given.
    var usesMigrationFlags: Bool {
        oldTag != nil || newTag != nil || !newClasses.isEmpty || !deletedClasses.isEmpty
            || !renamedClasses.isEmpty || !transferredClasses.isEmpty
    }

    func validate() throws {
        guard renamedClasses.count % 2 == 0 else {
            throw ValidationError("--rename-class takes two values: <from> <to>")
        }
        guard transferredClasses.count % 3 == 0 else {
            throw ValidationError("--transfer-class takes three values: <from-script> <from-class> <to-class>")
        }
    }

    func run() async throws {
        let app = CurrentApplication.value
        let (configuration, text) = try ConfigurationSource.load(path: config, app: app)
        var request = Durable_V1_PublishRequest()
        request.configuration = text
        request.environment = env ?? ""
        if usesMigrationFlags {
            FileHandle.standardError.write(
                Data(
                    "warning: the migration flags are deprecated (use [[migrations]] in durable.toml); this publish ignores the configuration's migrations.\n"
                        .utf8))
            request.commandLineMigration = .with { flags in
                flags.oldTag = oldTag ?? ""
                flags.newTag = newTag ?? ""
                flags.newClasses = newClasses
                flags.deletedClasses = deletedClasses
                flags.renamedClasses = stride(from: 0, to: renamedClasses.count, by: 2).map { index in
                    .with {
                        $0.from = renamedClasses[index]
                        $0.to = renamedClasses[index + 1]
                    }
                }
                flags.transferredClasses = stride(from: 0, to: transferredClasses.count, by: 3).map { index in
                    .with {
                        $0.fromScript = transferredClasses[index]
                        $0.from = transferredClasses[index + 1]
                        $0.to = transferredClasses[index + 2]
                    }
                }
            }
        }
        let client = try admin.client()
        let response: Durable_V1_PublishResponse
        do {
            response = try await client.call(Methods.publish, request, timeout: .seconds(60))
            await client.close()
        } catch let error as DurableObjectError {
            await client.close()
            throw CommandError(error.message)
        }
        let script = configuration.scriptName(environment: env)
        print("Published \(script) to \(admin.gateway)")
        for change in response.changes { print("  \(change)") }
        if response.changes.isEmpty { print("  (no migrations to apply)") }
    }
}
