import ArgumentParser

/// The `durable` executable: every process of the service is one of its subcommands.
@main
struct DurableCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "durable",
        abstract: "Durable objects: single-instance actors with private, transactional storage.",
        subcommands: [GatewayCommand.self, NodeCommand.self, StorageCheckCommand.self, CrashWriterCommand.self]
    )
}
