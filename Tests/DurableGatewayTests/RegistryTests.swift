import DurableGateway
import DurableStorage
import Foundation
import Testing

@Suite("Registry persistence")
struct RegistryTests {
    static let configuration = """
        name = "app"
        [durable_objects]
        bindings = [ { name = "COUNTER", class_name = "Counter" } ]
        [[migrations]]
        tag = "v1"
        new_classes = ["Counter"]
        """

    @Test("a publish survives closing and reopening the gateway's database; a refused one is not stored")
    func persists() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("registry-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let id: String
        do {
            let database = try Database(path: path)
            let registry = try Registry(database: database)
            let changes = try registry.publish(
                ConfigurationParser.parse(Self.configuration), environment: nil, exportedClasses: ["Counter"])
            #expect(changes.count == 1)
            id = try #require(registry.state.namespace(script: "app", className: "Counter")?.id)
            #expect(throws: MigrationPlanner.PublishError.self) {
                try registry.publish(
                    ConfigurationParser.parse("name = \"app\""), environment: nil, exportedClasses: ["Counter"])
            }
            database.close()
        }
        let database = try Database(path: path)
        let registry = try Registry(database: database)
        #expect(registry.state.namespace(script: "app", className: "Counter")?.id == id)
        #expect(registry.state.appliedTags["app"] == ["v1"])
        #expect(registry.state.bindings["app"]?.map(\.name) == ["COUNTER"])
    }
}
