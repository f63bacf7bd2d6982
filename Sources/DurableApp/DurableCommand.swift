import ArgumentParser
import DurableObjects

/// The `durable` command line: every process of the service is one of its subcommands, run for one app.
struct DurableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "durable",
        abstract: "Durable objects: single-instance actors with private, transactional storage.",
        subcommands: [
            DevCommand.self, GatewayCommand.self, NodeCommand.self, PublishCommand.self, InitCommand.self,
            TailCommand.self, ObjectsCommand.self, StorageCommand.self, BackupCommand.self, StorageCheckCommand.self,
            ClusterCommand.self, SlotsCommand.self, RebalanceCommand.self,
        ]
    )
}

extension DurableApplication {
    /// Runs the `durable` command line for this app: `dev`, `gateway`, `node`, `publish`, `init`, … with the
    /// app's classes, worker and configuration. An app's `main.swift` is one line:
    ///
    /// ```swift
    /// await DurableApplication(classes: [DurableObjectClass(Counter.self)], fetch: handle).main()
    /// ```
    public func main() async {
        ConcurrencyExecutor.installEventLoops()
        CurrentApplication.value = self
        await DurableCommand.main()
    }

    /// Runs the command line with explicit arguments (for tests and embedding).
    public func main(arguments: [String]) async {
        CurrentApplication.value = self
        await DurableCommand.main(arguments)
    }
}

/// The app the command line serves (set once, before arguments are parsed).
enum CurrentApplication {
    nonisolated(unsafe) static var value = DurableApplication(classes: [])
}

/// An error the command line stops with; its text is printed as `Error: <message>`.
struct CommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
