import ArgumentParser
import DurableClient
import DurableWire
import Foundation

/// `durable objects`: what objects a cluster holds (admin token).
struct ObjectsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "objects",
        abstract: "Inspect a cluster's objects (read-only; needs the admin token).",
        subcommands: [ObjectsListCommand.self]
    )
}

/// `durable objects list BINDING`: the objects of a binding's namespace that have stored data, from every node.
struct ObjectsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract:
            "List the objects of a binding that have stored data: id, the node holding it, and its name if known.",
        discussion: """
            A name is known when the object was reached by name (idFromName) since names were recorded. Objects that \
            never stored anything are not listed. Nothing is activated: the nodes read their databases.
            """
    )

    @Argument(help: "The binding, e.g. COUNTER.")
    var binding: String

    @Option(
        name: [.customLong("env"), .customLong("environment")],
        help: "The environment whose bindings apply (default: the one the gateway serves).")
    var environment: String?

    @Option(help: "At most this many objects per node.")
    var limit: Int = 10_000

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be between 1 and 10000") }
    }

    func run() async throws {
        let request = Durable_V1_ListObjectsRequest.with {
            $0.binding = binding
            $0.environment = environment ?? ""
            $0.limit = UInt32(limit)
        }
        let response = try await withAdminConnection(admin) { connection in
            try Durable_V1_ListObjectsResponse(
                serializedBytes: try await connection.call(Methods.adminListObjects, try request.serializedBytes()))
        }
        let rows = response.objects.map { object in
            (id: DurableObjectIDText.hex(Array(object.id)), node: object.nodeID, name: object.name)
        }
        switch format {
        case .table:
            printTable(["ID", "NODE", "NAME"], rows.map { [$0.id, $0.node, $0.name.isEmpty ? "-" : $0.name] })
            print("\(rows.count) object\(rows.count == 1 ? "" : "s") of \(binding) (namespace \(response.namespaceID))")
        case .json:
            try printJSON([
                "binding": binding, "namespace": response.namespaceID, "truncated": response.truncated,
                "objects": rows.map { row -> [String: Any] in
                    var object: [String: Any] = ["id": row.id, "node": row.node]
                    if !row.name.isEmpty { object["name"] = row.name }
                    return object
                },
                "failures": response.failures.map { ["node": $0.nodeID, "message": $0.message] },
            ])
        }
        if response.truncated {
            FileHandle.standardError.write(Data("note: a node holds more than \(limit) objects (see --limit)\n".utf8))
        }
        guard response.failures.isEmpty else {
            for failure in response.failures {
                FileHandle.standardError.write(Data("warning: node \(failure.nodeID): \(failure.message)\n".utf8))
            }
            let nodes = response.failures.map(\.nodeID).joined(separator: ", ")
            throw CommandError("the listing lacks the objects of node(s) \(nodes), which could not be asked")
        }
    }
}

/// Hex text of id bytes.
enum DurableObjectIDText {
    /// The lowercase hex digits of `bytes`.
    static func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }
}
