import DurableGateway
import DurableWire
import Foundation
import Testing

@Suite("Who may call the gateway's methods")
struct GatewayRolesTests {
    @Test("the operator methods take the admin token only: not an API token, not the cluster secret")
    func adminOnly() {
        let methods = ["ListObjects", "ListStorage", "GetStorage", "Backup"].map { "durable.v1.Admin/" + $0 }
        for method in methods {
            #expect(Gateway.roles(allowedToCall: method) == [.admin], "\(method)")
        }
        #expect(Gateway.roles(allowedToCall: "durable.v1.Objects/Invoke") == [.client, .admin, .cluster])
    }
}

@Suite("The wire protocol article's role table is the code's")
struct RoleTableArticleTests {
    /// The rows of the article's "Roles and methods" table: the methods named in backticks, and the roles.
    static func rows() throws -> [(methods: [String], roles: Set<RPCRole>)] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let article = try String(
            contentsOf: root.appendingPathComponent("Sources/DurableObjects/Documentation.docc/WireProtocol.md"),
            encoding: .utf8)
        let section = try #require(article.components(separatedBy: "### Roles and methods").dropFirst().first)
        var rows: [(methods: [String], roles: Set<RPCRole>)] = []
        for line in section.split(separator: "\n").prefix(while: { !$0.hasPrefix("###") })
        where line.hasPrefix("| `") || line.hasPrefix("| every") || line.hasPrefix("| any") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 2 else { continue }
            let methods = cells[0].components(separatedBy: "`").enumerated().filter { $0.offset % 2 == 1 }.map(
                \.element)
            var roles: Set<RPCRole> = []
            for name in cells[1].split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                switch name {
                case "client": roles.insert(.client)
                case "admin": roles.insert(.admin)
                case "cluster": roles.insert(.cluster)
                default: Issue.record("unknown role '\(name)' in the article")
                }
            }
            // "every `durable.v1.Admin/…` method (`ListObjects`, …)": the short names are Admin methods.
            let expanded = methods.flatMap { method -> [String] in
                if method.hasSuffix("…") { return [] }
                return method.contains("/") ? [method] : ["durable.v1.Admin/" + method]
            }
            rows.append((expanded, roles))
        }
        return rows
    }

    @Test("every method the table names is allowed exactly the roles it says")
    func tableMatchesCode() throws {
        let rows = try Self.rows()
        #expect(rows.count == 4)
        #expect(rows.flatMap(\.methods).count >= 10)
        for row in rows {
            for method in row.methods {
                #expect(Gateway.roles(allowedToCall: method) == row.roles, "\(method)")
            }
        }
        // The article's own example: an API token may call Node/Health at the gateway.
        #expect(Gateway.roles(allowedToCall: "durable.v1.Node/Health").contains(.client))
    }
}
