import DurableClient
import DurableExamples
import DurableGateway
import DurableObjects
import DurableStorage
import Foundation
import Testing

/// An app whose classes are all the example counter under the names the migrations use.
let migratingApp = DurableApplication(
    classes: ["Counter", "Tally", "Imported", "OldThing", "X"].map { DurableObjectClass(Counter.self, name: $0) })

@Suite("Migrations across a gateway and three nodes")
struct MigrationAcrossNodesTests {
    /// Increments `count` counters named `prefix0…` once each.
    func fill(_ namespace: DurableObjectNamespace, prefix: String, count: Int) async throws {
        for index in 0..<count {
            #expect(try await namespace.getByName("\(prefix)\(index)").fetch("http://do/increment").text() == "1")
        }
    }

    /// The values of counters `prefix0…`.
    func values(_ namespace: DurableObjectNamespace, prefix: String, count: Int) async throws -> [String] {
        var values: [String] = []
        for index in 0..<count {
            values.append(try await namespace.getByName("\(prefix)\(index)").fetch("http://do/").text())
        }
        return values
    }

    @Test("new → rename → transfer → delete: data follows renames and transfers, a delete empties every node")
    func lifecycle() async throws {
        try await withLocalCluster(app: migratingApp, nodes: 3) { cluster in
            // Another script creates X and stores objects in it.
            try await cluster.publish(
                """
                name = "other-app"
                [durable_objects]
                bindings = [ { name = "OTHER", class_name = "X" } ]
                [[migrations]]
                tag = "v1"
                new_classes = ["X"]
                """)
            try await fill(try cluster.namespace(script: "other-app", className: "X"), prefix: "x", count: 12)

            // v1: Counter and OldThing.
            var migrations = """
                [[migrations]]
                tag = "v1"
                new_classes = ["Counter", "OldThing"]
                """
            let v1 = try await cluster.publish(
                """
                name = "app"
                [durable_objects]
                bindings = [ { name = "COUNTER", class_name = "Counter" }, { name = "OLD", class_name = "OldThing" } ]
                \(migrations)
                """)
            #expect(v1.count == 2)
            let counters = try cluster.namespace(script: "app", className: "Counter")
            let olds = try cluster.namespace(script: "app", className: "OldThing")
            try await fill(counters, prefix: "c", count: 30)
            try await fill(olds, prefix: "o", count: 30)
            var perNode: [Int] = []
            for node in cluster.nodes {
                perNode.append(try node.runtime.objectIDs(inNamespace: counters.namespaceID).count)
            }
            #expect(perNode.reduce(0, +) == 30)
            #expect(perNode.filter { $0 > 0 }.count >= 2, "objects landed on several nodes: \(perNode)")

            // v2: Counter is renamed Tally; the old binding keeps working and both reach the same objects.
            migrations += """

                [[migrations]]
                tag = "v2"
                renamed_classes = [ { from = "Counter", to = "Tally" } ]
                """
            let v2 = try await cluster.publish(
                """
                name = "app"
                [durable_objects]
                bindings = [
                  { name = "COUNTER", class_name = "Tally" },
                  { name = "LEGACY", class_name = "Counter" },
                  { name = "OLD", class_name = "OldThing" },
                ]
                \(migrations)
                """)
            #expect(v2 == [.moved(namespaceID: counters.namespaceID, toScript: "app", toClass: "Tally")])
            let tallies = try cluster.namespace(script: "app", className: "Tally")
            #expect(tallies.namespaceID == counters.namespaceID)
            #expect(try await values(tallies, prefix: "c", count: 30) == Array(repeating: "1", count: 30))
            let env = cluster.gateway.workerEnvironment()
            #expect(try await env.namespace("LEGACY").getByName("c0").fetch("http://do/increment").text() == "2")
            #expect(try await env.namespace("COUNTER").getByName("c0").fetch("http://do/").text() == "2")

            // v3: X moves here from other-app as Imported, with its data; other-app's binding keeps reaching it.
            migrations += """

                [[migrations]]
                tag = "v3"
                transferred_classes = [ { from = "X", from_script = "other-app", to = "Imported" } ]
                """
            try await cluster.publish(
                """
                name = "app"
                [durable_objects]
                bindings = [
                  { name = "COUNTER", class_name = "Tally" },
                  { name = "OLD", class_name = "OldThing" },
                  { name = "IMPORTED", class_name = "Imported" },
                ]
                \(migrations)
                """)
            let imported = try cluster.gateway.workerEnvironment().namespace("IMPORTED")
            #expect(try await values(imported, prefix: "x", count: 12) == Array(repeating: "1", count: 12))
            #expect(try cluster.namespace(script: "other-app", className: "X").namespaceID == imported.namespaceID)

            // v4: OldThing is deleted: its column family is gone from every node, its objects with it.
            migrations += """

                [[migrations]]
                tag = "v4"
                deleted_classes = ["OldThing"]
                """
            let finalConfiguration = """
                name = "app"
                [durable_objects]
                bindings = [ { name = "COUNTER", class_name = "Tally" }, { name = "IMPORTED", class_name = "Imported" } ]
                \(migrations)
                """
            let v4 = try await cluster.publish(finalConfiguration)
            #expect(v4 == [.deleted(namespaceID: olds.namespaceID)])
            for node in cluster.nodes {
                #expect(!node.runtime.namespaceIDs.contains(olds.namespaceID))
            }
            await #expect(throws: DurableObjectError.self) {
                _ = try await olds.getByName("o0").fetch("http://do/")
            }
            // Publishing the same configuration again applies nothing: tags run once.
            #expect(try await cluster.publish(finalConfiguration).isEmpty)
            #expect(cluster.gateway.registry.state.appliedTags["app"] == ["v1", "v2", "v3", "v4"])
        }
    }

    @Test("a deleted class's data is gone from every node's database, not only from memory")
    func deleteDropsColumnFamilies() async throws {
        let folder: String
        let namespaceID: String
        do {
            let cluster = try await LocalCluster.start(
                app: migratingApp, nodes: 3,
                configuration: """
                    name = "app"
                    [durable_objects]
                    bindings = [ { name = "OLD", class_name = "OldThing" } ]
                    [[migrations]]
                    tag = "v1"
                    new_classes = ["OldThing"]
                    """)
            let olds = try cluster.namespace(script: "app", className: "OldThing")
            namespaceID = olds.namespaceID
            try await fill(olds, prefix: "o", count: 40)
            var stored = 0
            for node in cluster.nodes where try node.runtime.objectIDs(inNamespace: namespaceID).count > 0 {
                stored += 1
            }
            #expect(stored >= 2, "the objects are stored on several nodes before the delete")
            try await cluster.publish(
                """
                name = "app"
                [[migrations]]
                tag = "v1"
                new_classes = ["OldThing"]
                [[migrations]]
                tag = "v2"
                deleted_classes = ["OldThing"]
                """)
            folder = cluster.folder.path
            await cluster.close()
            for number in 1...3 {
                let families = try Database.columnFamilyNames(atPath: "\(folder)/node-\(number)")
                #expect(!families.contains { $0.contains(namespaceID) }, "node-\(number): \(families)")
            }
            // The folder lives as long as the cluster object.
            withExtendedLifetime(cluster) {}
        }
    }

    @Test("a node that was down when a class was deleted drops the class's data when it joins again")
    func deleteWhileNodeDown() async throws {
        let configuration = """
            name = "app"
            [durable_objects]
            bindings = [ { name = "OLD", class_name = "OldThing" }, { name = "COUNTER", class_name = "Counter" } ]
            [[migrations]]
            tag = "v1"
            new_classes = ["OldThing", "Counter"]
            """
        let cluster = try await LocalCluster.start(app: migratingApp, nodes: 2, configuration: configuration)
        let olds = try cluster.namespace(script: "app", className: "OldThing")
        let counters = try cluster.namespace(script: "app", className: "Counter")
        try await fill(olds, prefix: "o", count: 30)
        try await fill(counters, prefix: "c", count: 30)
        let absent = try #require(
            try (0..<2).first { try cluster.nodes[$0].runtime.objectIDs(inNamespace: olds.namespaceID).count > 0 })
        let countersThere = try cluster.nodes[absent].runtime.objectIDs(inNamespace: counters.namespaceID).count

        await cluster.stopNode(absent)
        try await cluster.publish(
            """
            name = "app"
            [durable_objects]
            bindings = [ { name = "COUNTER", class_name = "Counter" } ]
            [[migrations]]
            tag = "v1"
            new_classes = ["OldThing", "Counter"]
            [[migrations]]
            tag = "v2"
            deleted_classes = ["OldThing"]
            """)
        try await cluster.startNode(absent)

        let node = cluster.nodes[absent]
        #expect(!node.runtime.namespaceIDs.contains(olds.namespaceID))
        #expect(node.runtime.namespaceIDs.contains(counters.namespaceID))
        #expect(try node.runtime.objectIDs(inNamespace: counters.namespaceID).count == countersThere)
        #expect(try await values(counters, prefix: "c", count: 30) == Array(repeating: "1", count: 30))
        let folder = cluster.folder.path
        await cluster.close()
        for number in 1...2 {
            let families = try Database.columnFamilyNames(atPath: "\(folder)/node-\(number)")
            #expect(!families.contains { $0.contains(olds.namespaceID) }, "node-\(number): \(families)")
        }
        withExtendedLifetime(cluster) {}
    }
}
