import ArgumentParser
import DurableClient
import DurableWire
import Foundation

/// `durable backup DIR`: every node, then the gateway, writes a RocksDB checkpoint of its database under DIR on
/// its own file system (admin token).
struct BackupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Write a checkpoint of every node's database and of the gateway's into a directory.",
        discussion: """
            Each node writes DIR/nodes/<node id> and then the gateway writes DIR/gateway, each on its own file \
            system (DIR is made absolute here). A checkpoint is consistent for its database (hard links to the \
            database's files and the flushed write-ahead log); the checkpoints of different processes are taken one \
            after the other, not at one instant. The nodes go first so that the gateway's placement covers every \
            slot their data is in. Restore: stop the processes, replace each one's --data folder with its \
            checkpoint folder, start them.
            """
    )

    @Argument(help: "The backup directory; it must hold no gateway/ or nodes/<node id>/ folders yet.")
    var directory: String

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func run() async throws {
        let base = URL(fileURLWithPath: directory).standardizedFileURL.path
        try await withAdminConnection(admin) { connection in
            let plan = try await step(
                connection,
                .with {
                    $0.directory = base
                    $0.step = .plan
                })
            print("Backing up \(plan.nodeIds.count) node(s) and the gateway into \(base)")
            var total: UInt64 = 0
            for nodeID in plan.nodeIds {
                print("  node \(nodeID): writing a checkpoint…")
                fflush(nil)
                let written = try await step(
                    connection,
                    .with {
                        $0.directory = base
                        $0.step = .node
                        $0.nodeID = nodeID
                    }
                ).checkpoint
                total += written.bytes
                print("  node \(nodeID): \(Self.describe(written))")
                fflush(nil)
            }
            let gateway = try await step(
                connection,
                .with {
                    $0.directory = base
                    $0.step = .gateway
                }
            ).checkpoint
            total += gateway.bytes
            print("  gateway: \(Self.describe(gateway))")
            print("Backup complete: \(plan.nodeIds.count + 1) checkpoint(s), \(Self.size(total)) in \(base)")
        }
    }

    private func step(_ connection: AdminConnection, _ request: Durable_V1_BackupRequest) async throws
        -> Durable_V1_BackupResponse
    {
        try Durable_V1_BackupResponse(
            serializedBytes: try await connection.call(
                Methods.adminBackup, try request.serializedBytes(), timeout: .seconds(660)))
    }

    static func describe(_ summary: Durable_V1_CheckpointSummary) -> String {
        "\(summary.path) (\(summary.files) files, \(size(summary.bytes)))"
    }

    /// `1234 bytes`, `12.3 KiB`, `4.5 MiB`, ….
    static func size(_ bytes: UInt64) -> String {
        guard bytes >= 1024 else { return "\(bytes) bytes" }
        var value = Double(bytes)
        for unit in ["KiB", "MiB", "GiB", "TiB"] {
            value /= 1024
            if value < 1024 || unit == "TiB" { return String(format: "%.1f", value) + " " + unit }
        }
        return "\(bytes) bytes"
    }
}
