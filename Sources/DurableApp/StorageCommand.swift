import ArgumentParser
import DurableClient
import DurableWire
import Foundation

/// `durable storage`: what one object stored (admin token; read-only).
struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Read one object's storage (read-only; needs the admin token).",
        discussion: """
            The node holding the object reads its database: the object is neither activated nor blocked, and what \
            it wrote in a turn that is not flushed yet is not shown.
            """,
        subcommands: [StorageListCommand.self, StorageGetCommand.self]
    )
}

/// Which object of which binding: shared by `storage list` and `storage get`.
struct ObjectArguments: ParsableArguments {
    @Argument(help: "The binding, e.g. COUNTER.")
    var binding: String

    @Argument(
        help: ArgumentHelp(
            "The object: 64 hex digits that are an id of the binding's namespace are taken as that id, anything "
                + "else as a name (its id is derived like idFromName).",
            valueName: "name-or-id"))
    var object: String

    @Flag(help: "Take name-or-id as a name even when it is 64 hex digits.")
    var name = false

    @Option(
        name: [.customLong("env"), .customLong("environment")],
        help: "The environment whose bindings apply (default: the one the gateway serves).")
    var environment: String?

    var address: Durable_V1_ObjectAddress {
        .with {
            $0.binding = binding
            $0.environment = environment ?? ""
            $0.object = object
            $0.asName = name
        }
    }
}

/// `durable storage list BINDING NAME_OR_ID`: an object's keys and values in key order.
struct StorageListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list", abstract: "List an object's keys and values, in key order.")

    @OptionGroup var target: ObjectArguments

    @Option(help: "Only keys that begin with this.")
    var prefix: String?

    @Option(help: "At most this many entries.")
    var limit: Int?

    @Option(help: "table or json.")
    var format: OutputFormat = .table

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    /// Table cells longer than this are cut (`--format json` shows every value whole).
    static let maximumCellLength = 120

    func validate() throws {
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        var entries: [Durable_V1_StorageEntry] = []
        var first = Durable_V1_ListStorageResponse()
        var more = true
        try await withAdminConnection(admin) { connection in
            // The nodes cut answers at a few MiB: page on from the last key until done or the limit is reached.
            while more, limit.map({ entries.count < $0 }) ?? true {
                let request = Durable_V1_ListStorageRequest.with {
                    $0.address = target.address
                    $0.prefix = prefix ?? ""
                    $0.startAfter = entries.last?.key ?? Data()
                    $0.limit = limit.map { UInt32(clamping: $0 - entries.count) } ?? 0
                }
                let page = try Durable_V1_ListStorageResponse(
                    serializedBytes: try await connection.call(Methods.adminListStorage, try request.serializedBytes()))
                if entries.isEmpty { first = page }
                entries += page.entries
                more = page.more && !page.entries.isEmpty
            }
        }
        let id = DurableObjectIDText.hex(Array(first.objectID))
        let rows = entries.map { entry -> (key: String, value: StoredValueText) in
            let key = String(decoding: entry.key, as: UTF8.self)
            return (key, StoredValueText(Array(entry.value), key: key))
        }
        switch format {
        case .table:
            printTable(
                ["KEY", "TYPE", "VALUE"],
                rows.map { [StoredValueText.quoted($0.key), $0.value.type, Self.cell($0.value.text)] })
            let place = first.nodeID.isEmpty ? "no node holds data of it" : "on node \(first.nodeID)"
            print(
                "\(rows.count) key\(rows.count == 1 ? "" : "s") of object \(id) (\(target.binding), \(place))"
                    + (more ? "; more follow (see --limit)" : ""))
        case .json:
            try printJSON([
                "binding": target.binding, "namespace": first.namespaceID, "id": id, "node": first.nodeID,
                "more": more,
                "entries": rows.map { ["key": $0.key, "type": $0.value.type, "value": $0.value.json] },
            ])
        }
    }

    static func cell(_ text: String) -> String {
        guard text.count > maximumCellLength else { return text }
        return String(text.prefix(maximumCellLength)) + "… (\(text.utf8.count) bytes; --format json shows it whole)"
    }
}

/// `durable storage get BINDING NAME_OR_ID KEY`: one value.
struct StorageGetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Print one value of an object (exits non-zero when the key holds none).")

    @OptionGroup var target: ObjectArguments

    @Argument(help: "The key.")
    var key: String

    @Option(help: "table (the value alone) or json.")
    var format: OutputFormat = .table

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func run() async throws {
        let request = Durable_V1_GetStorageRequest.with {
            $0.address = target.address
            $0.key = key
        }
        let response = try await withAdminConnection(admin) { connection in
            try Durable_V1_GetStorageResponse(
                serializedBytes: try await connection.call(Methods.adminGetStorage, try request.serializedBytes()))
        }
        let value = StoredValueText(Array(response.value), key: key)
        switch format {
        case .table:
            print(value.text)
        case .json:
            try printJSON([
                "binding": target.binding, "namespace": response.namespaceID,
                "id": DurableObjectIDText.hex(Array(response.objectID)), "node": response.nodeID, "key": key,
                "type": value.type, "value": value.json,
            ])
        }
    }
}
