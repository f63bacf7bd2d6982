import DurableGateway
import DurableObjects
import Testing

@Suite("Migrations (SEMANTICS §8)")
struct MigrationTests {
    static let exported: Set<String> = ["Counter", "Tally", "Room", "Y", "Legacy"]

    func publish(
        _ text: String, environment: String? = nil, exported: Set<String> = exported,
        state: RegistryState = RegistryState()
    ) throws -> (state: RegistryState, changes: [RegistryChange]) {
        try MigrationPlanner.publish(
            ConfigurationParser.parse(text), environment: environment, exportedClasses: exported, state: state)
    }

    @Test("new → rename → transfer → delete across publishes: the namespace (and so the data) follows")
    func lifecycle() throws {
        let v1 = """
            name = "app"
            [durable_objects]
            bindings = [ { name = "COUNTER", class_name = "Counter" } ]
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter", "Legacy"]
            """
        let first = try publish(v1)
        let counter = try #require(first.state.namespace(script: "app", className: "Counter"))
        #expect(first.changes.count == 2)
        #expect(first.state.appliedTags["app"] == ["v1"])

        // Publishing the same configuration again applies nothing.
        let again = try publish(v1, state: first.state)
        #expect(again.changes.isEmpty)
        #expect(again.state == first.state)

        let v2 =
            v1 + """

                [[migrations]]
                tag = "v2"
                renamed_classes = [ { from = "Counter", to = "Tally" } ]
                """
        let second = try publish(v2, state: first.state)
        #expect(second.changes == [.moved(namespaceID: counter.id, toScript: "app", toClass: "Tally")])
        #expect(
            second.state.namespace(script: "app", className: "Tally")?.id == counter.id, "same namespace: data follows")
        #expect(
            second.state.namespace(script: "app", className: "Counter")?.id == counter.id,
            "bindings to the old class keep working by forwarding")

        // Another script takes the class over.
        let other = """
            name = "other-app"
            [durable_objects]
            bindings = [ { name = "MOVED", class_name = "Y" } ]
            [[migrations]]
            tag = "t1"
            transferred_classes = [ { from = "Tally", from_script = "app", to = "Y" } ]
            """
        let third = try publish(other, state: second.state)
        #expect(third.state.namespace(script: "other-app", className: "Y")?.id == counter.id)
        #expect(third.state.namespace(script: "app", className: "Tally")?.id == counter.id)

        let v3 = """
            name = "app"
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter", "Legacy"]
            [[migrations]]
            tag = "v2"
            renamed_classes = [ { from = "Counter", to = "Tally" } ]
            [[migrations]]
            tag = "v3"
            deleted_classes = ["Legacy"]
            """
        let legacy = try #require(third.state.namespace(script: "app", className: "Legacy"))
        let fourth = try publish(v3, state: third.state)
        #expect(fourth.changes == [.deleted(namespaceID: legacy.id)])
        #expect(fourth.state.namespace(script: "app", className: "Legacy") == nil)
        #expect(fourth.state.appliedTags["app"] == ["v1", "v2", "v3"])
    }

    @Test("migrations are inherited by environments and applied once per environment")
    func perEnvironment() throws {
        let text = """
            name = "app"
            [durable_objects]
            bindings = [ { name = "COUNTER", class_name = "Counter" } ]
            [env.staging]
            durable_objects.bindings = [ { name = "COUNTER", class_name = "Counter" } ]
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter"]
            """
        let top = try publish(text)
        let staging = try publish(text, environment: "staging", state: top.state)
        #expect(staging.changes.count == 1, "the environment applies the tag for its own script")
        let topID = try #require(staging.state.namespace(script: "app", className: "Counter")?.id)
        let stagingID = try #require(staging.state.namespace(script: "app-staging", className: "Counter")?.id)
        #expect(topID != stagingID, "an environment's bindings reach different objects")
        #expect(staging.state.appliedTags == ["app": ["v1"], "app-staging": ["v1"]])
        let repeated = try publish(text, environment: "staging", state: staging.state)
        #expect(repeated.changes.isEmpty)
    }

    @Test("deleting a class a binding still references is refused with the platform's words")
    func deleteWithBinding() throws {
        let first = try publish(
            """
            name = "app"
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter"]
            """)
        let error = #expect(throws: MigrationPlanner.PublishError.self) {
            try publish(
                """
                name = "app"
                [durable_objects]
                bindings = [ { name = "COUNTER", class_name = "Counter" } ]
                [[migrations]]
                tag = "v1"
                new_classes = ["Counter"]
                [[migrations]]
                tag = "v2"
                deleted_classes = ["Counter"]
                """, state: first.state)
        }
        #expect(
            error?.message
                == "Cannot apply --delete-class migration to class Counter without also removing the binding that references it"
        )
    }

    @Test("a binding to a class no migration created is refused with the platform's words")
    func bindingWithoutClass() {
        let error = #expect(throws: MigrationPlanner.PublishError.self) {
            try publish(
                """
                name = "app"
                [durable_objects]
                bindings = [ { name = "ROOMS", class_name = "Room" } ]
                """)
        }
        #expect(
            error?.message
                == "Cannot create binding for class 'Room' because it is not currently configured to implement Durable Objects. Ensure a --new-class migration has been applied to it."
        )
    }

    @Test("a new class the app does not provide is refused with the platform's words")
    func newClassNotExported() {
        let error = #expect(throws: MigrationPlanner.PublishError.self) {
            try publish(
                """
                name = "app"
                [[migrations]]
                tag = "v1"
                new_classes = ["Ghost"]
                """)
        }
        #expect(error?.message == "Cannot apply new-class migration to class Ghost that is not exported by script")
    }

    @Test("once a script has a tag, every publish must carry its migrations")
    func migrationsRequiredOnceTagged() throws {
        let first = try publish(
            """
            name = "app"
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter"]
            """)
        let missing = #expect(throws: MigrationPlanner.PublishError.self) {
            try publish("name = \"app\"", state: first.state)
        }
        #expect(missing?.message.contains("every publish must carry its migrations") == true)
        let unknownTag = #expect(throws: MigrationPlanner.PublishError.self) {
            try publish(
                """
                name = "app"
                [[migrations]]
                tag = "other"
                new_classes = ["Room"]
                """, state: first.state)
        }
        #expect(unknownTag?.message.contains("'v1'") == true)
    }

    @Test("a rename or transfer onto a class that already has a namespace is refused: one binding, one dataset")
    func ontoExistingNamespace() throws {
        let base = """
            name = "app"
            [durable_objects]
            bindings = [ { name = "COUNTER", class_name = "Counter" }, { name = "TALLY", class_name = "Tally" } ]
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter", "Tally"]
            """
        let first = try publish(base)
        let rename = #expect(throws: MigrationPlanner.PublishError.self) {
            try publish(
                base + """

                    [[migrations]]
                    tag = "v2"
                    renamed_classes = [ { from = "Counter", to = "Tally" } ]
                    """, state: first.state)
        }
        #expect(
            rename?.message
                == "Cannot apply rename migration to class Tally: it already implements Durable Objects in script app.")
        let other = try publish(
            """
            name = "other"
            [[migrations]]
            tag = "v1"
            new_classes = ["Room"]
            """, state: first.state)
        let transfer = #expect(throws: MigrationPlanner.PublishError.self) {
            try publish(
                base + """

                    [[migrations]]
                    tag = "v2"
                    transferred_classes = [ { from = "Room", from_script = "other", to = "Tally" } ]
                    """, state: other.state)
        }
        #expect(
            transfer?.message
                == "Cannot apply transfer migration to class Tally: it already implements Durable Objects in script app."
        )
    }

    @Test("a refused publish leaves the state as it was")
    func atomicPublish() throws {
        let first = try publish(
            """
            name = "app"
            [[migrations]]
            tag = "v1"
            new_classes = ["Counter"]
            """)
        #expect(throws: MigrationPlanner.PublishError.self) {
            try publish(
                """
                name = "app"
                [[migrations]]
                tag = "v1"
                new_classes = ["Counter"]
                [[migrations]]
                tag = "v2"
                new_classes = ["Room", "Ghost"]
                """, state: first.state)
        }
        // The caller keeps its state: nothing of v2 (not even Room) exists in it.
        #expect(first.state.namespace(script: "app", className: "Room") == nil)
        #expect(first.state.appliedTags["app"] == ["v1"])
    }
}
