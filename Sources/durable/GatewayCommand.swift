import ArgumentParser
import DurableExamples
import DurableGateway
import Foundation
import Logging
import ServiceLifecycle

/// `durable gateway`: the front door of a cluster: registry, placement and routing to the nodes.
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Run the gateway: binding registry, placement, and routing of object calls to storage nodes."
    )

    @Option(help: "The address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("rpc-port"), help: "The RPC port (0 picks a free one; the chosen port is printed).")
    var rpcPort: Int = 7070

    @Option(help: "The folder of the gateway's database (registry and placement).")
    var data: String

    @Option(help: "A durable.toml to publish at start (default: the example app's configuration).")
    var config: String?

    @Option(help: "The environment to publish and serve bindings for (default: the top level).")
    var env: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        guard (0...65535).contains(rpcPort) else { throw ValidationError("--rpc-port must be between 0 and 65535") }
    }

    func run() async throws {
        var logger = Logger(label: "durable.gateway")
        logger.logLevel = logLevel
        let app =
            try config.map { try ConfigurationParser.load(path: $0) }
            ?? ConfigurationParser.parse(ExampleApp.configuration, file: "example durable.toml")
        let host = self.host
        let gateway = try Gateway(
            configuration: GatewayConfiguration(host: host, rpcPort: rpcPort, dataDirectory: data, environment: env),
            exportedClasses: Set(ExampleApp.classes.map(\.name)), logger: logger,
            onStarted: { port in
                print("durable gateway listening on \(host):\(port)")
                fflush(nil)
            })
        try await gateway.publish(app, environment: env)
        let group = ServiceGroup(
            services: [gateway], gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [], logger: logger)
        try await group.run()
    }
}
