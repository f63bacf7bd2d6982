import DurableGateway
import Testing

@Suite("durable.toml (SEMANTICS §8)")
struct ConfigurationTests {
    static let full = """
        name = "counter-app"

        [durable_objects]
        bindings = [ { name = "COUNTER", class_name = "Counter" } ]

        [env.staging]
        durable_objects.bindings = [
          { name = "COUNTER", class_name = "Counter" },
          { name = "SHARED", class_name = "Counter", script_name = "counter-app" },
        ]

        [[migrations]]
        tag = "v1"
        new_classes = ["Counter"]

        [[migrations]]
        tag = "v2"
        renamed_classes = [ { from = "Counter", to = "Tally" } ]
        deleted_classes = ["OldThing"]
        transferred_classes = [ { from = "X", from_script = "other-app", to = "Y" } ]
        """

    @Test("a full file parses: bindings, environments, ordered migrations")
    func parsesEverything() throws {
        let configuration = try ConfigurationParser.parse(Self.full)
        #expect(configuration.name == "counter-app")
        #expect(configuration.bindings == [BindingConfiguration(name: "COUNTER", className: "Counter")])
        #expect(configuration.environments["staging"]?.bindings.count == 2)
        #expect(configuration.migrations.map(\.tag) == ["v1", "v2"])
        #expect(configuration.migrations[0].newClasses == ["Counter"])
        #expect(configuration.migrations[1].renamedClasses == [Migration.Rename(from: "Counter", to: "Tally")])
        #expect(configuration.migrations[1].deletedClasses == ["OldThing"])
        #expect(
            configuration.migrations[1].transferredClasses == [
                Migration.Transfer(from: "X", fromScript: "other-app", to: "Y")
            ])
    }

    @Test("[vars] per environment, not inherited; numbers and booleans read as text; other values are refused")
    func vars() throws {
        let configuration = try ConfigurationParser.parse(
            """
            name = "app"
            [vars]
            GREETING = "hello"
            LIMIT = 3
            DEBUG = true
            [env.staging.vars]
            GREETING = "hi"
            [env.bare]
            """)
        #expect(configuration.resolvedVars(environment: nil) == ["GREETING": "hello", "LIMIT": "3", "DEBUG": "true"])
        #expect(configuration.resolvedVars(environment: "staging") == ["GREETING": "hi"])
        #expect(configuration.resolvedVars(environment: "bare").isEmpty)
        let nested = #expect(throws: ConfigurationError.self) {
            try ConfigurationParser.parse("name = \"app\"\n[vars]\nLIST = [1, 2]\n")
        }
        #expect(nested?.key == "vars.LIST")
    }

    @Test("environments are named <name>-<env>, do not inherit bindings, and script_name defaults to their script")
    func environments() throws {
        let configuration = try ConfigurationParser.parse(Self.full)
        #expect(configuration.scriptName(environment: nil) == "counter-app")
        #expect(configuration.scriptName(environment: "staging") == "counter-app-staging")
        let staging = try configuration.resolvedBindings(environment: "staging")
        #expect(
            staging[0] == BindingConfiguration(name: "COUNTER", className: "Counter", scriptName: "counter-app-staging")
        )
        #expect(staging[1] == BindingConfiguration(name: "SHARED", className: "Counter", scriptName: "counter-app"))
        let top = try configuration.resolvedBindings(environment: nil)
        #expect(top == [BindingConfiguration(name: "COUNTER", className: "Counter", scriptName: "counter-app")])

        let bare = try ConfigurationParser.parse(
            """
            name = "app"
            [durable_objects]
            bindings = [ { name = "A", class_name = "A" } ]
            [env.production]
            """)
        #expect(try bare.resolvedBindings(environment: "production").isEmpty, "top-level bindings are not inherited")
        let unknown = #expect(throws: ConfigurationError.self) { try bare.resolvedBindings(environment: "nope") }
        #expect(unknown?.key == "env.nope")
    }

    @Test(
        "malformed files get an error naming the file, the key and the problem",
        arguments: [
            ("name = ", "", "not valid TOML at line 1"),
            ("[durable_objects]\nbindings = []", "name", "missing"),
            ("name = 3", "name", "must be a string"),
            (
                "name = \"a\"\n[durable_objects]\nbindings = [ { class_name = \"C\" } ]",
                "durable_objects.bindings[0].name", "missing"
            ),
            (
                "name = \"a\"\n[durable_objects]\nbindings = [ { name = \"B\" } ]",
                "durable_objects.bindings[0].class_name", "missing"
            ),
            ("name = \"a\"\n[durable_objects]\nbindings = \"COUNTER\"", "durable_objects.bindings", "must be an array"),
            (
                "name = \"a\"\n[durable_objects]\nbindings = [ { name = \"B\", class_name = \"C\" }, { name = \"B\", class_name = \"D\" } ]",
                "durable_objects.bindings[1].name", "declared twice"
            ),
            ("name = \"a\"\n[[migrations]]\nnew_classes = [\"C\"]", "migrations[0].tag", "missing"),
            (
                "name = \"a\"\n[[migrations]]\ntag = \"v1\"\n[[migrations]]\ntag = \"v1\"", "migrations[1].tag",
                "used twice"
            ),
            (
                "name = \"a\"\n[[migrations]]\ntag = \"v1\"\nnew_classes = [1]", "migrations[0].new_classes[0]",
                "must be a string"
            ),
            (
                "name = \"a\"\n[[migrations]]\ntag = \"v1\"\nrenamed_classes = [ { from = \"A\" } ]",
                "migrations[0].renamed_classes[0].to", "missing"
            ),
            (
                "name = \"a\"\n[[migrations]]\ntag = \"v1\"\ntransferred_classes = [ { from = \"A\", to = \"B\" } ]",
                "migrations[0].transferred_classes[0].from_script", "missing"
            ),
        ])
    func malformed(text: String, key: String, problem: String) {
        let error = #expect(throws: ConfigurationError.self) {
            try ConfigurationParser.parse(text, file: "app/durable.toml")
        }
        #expect(error?.file == "app/durable.toml")
        #expect(error?.key == key)
        #expect(error?.message.contains(problem) == true, "\(error?.message ?? "")")
        #expect(error?.description.hasPrefix("app/durable.toml: ") == true)
    }

    @Test("a missing file is an error naming it")
    func missingFile() {
        let error = #expect(throws: ConfigurationError.self) {
            try ConfigurationParser.load(path: "/nonexistent/durable.toml")
        }
        #expect(error?.file == "/nonexistent/durable.toml")
    }
}
