import DurableApp
import DurableExamples
import DurableObjects
import Foundation

// `durable-test-server`: the example app's `durable` command line with the fixtures process tests drive and users
// never get: the DIAGNOSTIC binding (``DiagnosticObject``) on every node, and `debug-crash-writer`.

/// The example app's configuration with the DIAGNOSTIC binding and the migration that creates its class.
let configuration =
    ExampleApp.configuration.replacingOccurrences(
        of: "bindings = [\n", with: "bindings = [\n  { name = \"DIAGNOSTIC\", class_name = \"DiagnosticObject\" },\n")
        + """


        [[migrations]]
        tag = "diagnostics"
        new_classes = ["DiagnosticObject"]
        """

if CommandLine.arguments.dropFirst().first == CrashWriterCommand.configuration.commandName {
    do {
        let command = try CrashWriterCommand.parse(Array(CommandLine.arguments.dropFirst(2)))
        try await command.writeUntilKilled()
    } catch {
        CrashWriterCommand.exit(withError: error)
    }
} else {
    await DurableApplication(
        classes: ExampleApp.classes + [DurableObjectClass(DiagnosticObject.self)], configuration: configuration,
        worker: ExampleApp.worker
    ).main()
}
