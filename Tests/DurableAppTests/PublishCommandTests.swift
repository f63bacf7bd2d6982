import DurableClient
import DurableObjects
import DurableWire
import Foundation
import Testing

@testable import DurableApp

/// Runs `durable publish` with `arguments` against the cluster's gateway; returns the error text, if any.
func publish(_ cluster: LocalCluster, config: String, _ arguments: [String] = []) async -> String? {
    let file = cluster.folder.child("durable-\(UUID().uuidString).toml")
    _ = FileManager.default.createFile(atPath: file, contents: Data(config.utf8))
    CurrentApplication.value = migratingApp
    do {
        let command = try PublishCommand.parse(
            ["--config", file, "--gateway", "127.0.0.1:\(cluster.rpcPort)"] + arguments)
        try await command.run()
        return nil
    } catch {
        return "\(error)"
    }
}

@Suite("durable publish against a gateway")
struct PublishCommandTests {
    @Test("each documented migration error comes back word for word, and nothing is applied")
    func documentedErrors() async throws {
        try await withLocalCluster(app: migratingApp, nodes: 1) { cluster in
            #expect(
                await publish(
                    cluster,
                    config: """
                        name = "app"
                        [durable_objects]
                        bindings = [ { name = "COUNTER", class_name = "Counter" } ]
                        [[migrations]]
                        tag = "v1"
                        new_classes = ["Counter"]
                        """) == nil)
            #expect(
                await publish(
                    cluster,
                    config: """
                        name = "app"
                        [durable_objects]
                        bindings = [ { name = "COUNTER", class_name = "Counter" } ]
                        [[migrations]]
                        tag = "v1"
                        new_classes = ["Counter"]
                        [[migrations]]
                        tag = "v2"
                        deleted_classes = ["Counter"]
                        """)
                    == "Cannot apply --delete-class migration to class Counter without also removing the binding that references it"
            )
            #expect(
                await publish(
                    cluster,
                    config: """
                        name = "app"
                        [durable_objects]
                        bindings = [ { name = "COUNTER", class_name = "Counter" }, { name = "T", class_name = "Tally" } ]
                        [[migrations]]
                        tag = "v1"
                        new_classes = ["Counter"]
                        """)
                    == "Cannot create binding for class 'Tally' because it is not currently configured to implement Durable Objects. Ensure a --new-class migration has been applied to it."
            )
            #expect(
                await publish(
                    cluster,
                    config: """
                        name = "app"
                        [[migrations]]
                        tag = "v1"
                        new_classes = ["Counter"]
                        [[migrations]]
                        tag = "v2"
                        new_classes = ["Nope"]
                        """) == "Cannot apply new-class migration to class Nope that is not exported by script")
            // A malformed file is refused before anything is sent, naming the file and the key.
            let malformed = await publish(
                cluster,
                config: """
                    name = "app"
                    [durable_objects]
                    bindings = [ { name = "COUNTER" } ]
                    """)
            #expect(
                malformed?.contains(".toml") == true && malformed?.contains("class_name") == true, "\(malformed ?? "")")
            #expect(cluster.gateway.registry.state.appliedTags["app"] == ["v1"])
        }
    }

    @Test("the deprecated migration flags apply one migration and ignore the configuration's")
    func deprecatedFlags() async throws {
        try await withLocalCluster(app: migratingApp, nodes: 2) { cluster in
            let counterConfig = """
                name = "flags-app"
                [durable_objects]
                bindings = [ { name = "COUNTER", class_name = "Counter" } ]
                """
            #expect(
                await publish(cluster, config: counterConfig, ["--new-class", "Counter", "--new-tag", "v1"]) == nil)
            let counters = try cluster.namespace(script: "flags-app", className: "Counter")
            for index in 0..<10 {
                _ = try await counters.getByName("c\(index)").fetch("http://do/increment")
            }
            let tallyConfig = """
                name = "flags-app"
                [durable_objects]
                bindings = [ { name = "COUNTER", class_name = "Tally" } ]
                [[migrations]]
                tag = "v9"
                new_classes = ["Imported"]
                """
            #expect(
                await publish(
                    cluster, config: tallyConfig,
                    ["--old-tag", "v1", "--new-tag", "v2", "--rename-class", "Counter", "Tally"]) == nil)
            let tallies = try cluster.namespace(script: "flags-app", className: "Tally")
            #expect(tallies.namespaceID == counters.namespaceID)
            #expect(try await tallies.getByName("c3").fetch("http://do/").text() == "1")
            // The configuration's v9 was ignored.
            #expect(cluster.gateway.registry.state.namespace(script: "flags-app", className: "Imported") == nil)
            #expect(cluster.gateway.registry.state.appliedTags["flags-app"] == ["v1", "v2"])

            // A stale --old-tag is refused.
            let stale = await publish(
                cluster, config: tallyConfig, ["--old-tag", "v1", "--new-tag", "v3", "--new-class", "X"])
            #expect(stale?.contains("--old-tag 'v1' does not match") == true, "\(stale ?? "")")
            #expect(cluster.gateway.registry.state.namespace(script: "flags-app", className: "X") == nil)
        }
    }

    @Test("--rename-class and --transfer-class need whole pairs and triples")
    func flagArity() throws {
        let rename = refusal(PublishCommand.self, ["--rename-class", "A"])
        #expect(rename?.contains("--rename-class") == true, "\(rename ?? "accepted")")
        let transfer = refusal(PublishCommand.self, ["--transfer-class", "s", "A"])
        #expect(transfer?.contains("--transfer-class") == true, "\(transfer ?? "accepted")")
        let command = try PublishCommand.parse(["--transfer-class", "other", "X", "Y", "--rename-class", "A", "B"])
        #expect(command.transferredClasses == ["other", "X", "Y"])
        #expect(command.renamedClasses == ["A", "B"])
    }
}

@Suite("Gateway/Publish over RPC")
struct PublishOverRPCTests {
    @Test("a configuration that does not parse is INVALID_ARGUMENT naming the problem; the gateway keeps serving")
    func malformedConfiguration() async throws {
        try await withLocalCluster(app: migratingApp, nodes: 1) { cluster in
            let error = await #expect(throws: DurableObjectError.self) {
                let _: Durable_V1_PublishResponse = try await cluster.client.call(
                    Methods.publish, Durable_V1_PublishRequest.with { $0.configuration = "name = [" })
            }
            #expect(error?.code == .invalidArgument)
            #expect(error?.message.contains("not valid TOML") == true, "\(String(describing: error))")
            let _: Durable_V1_PublishResponse = try await cluster.client.call(
                Methods.publish,
                Durable_V1_PublishRequest.with {
                    $0.configuration = """
                        name = "app"
                        [durable_objects]
                        bindings = [ { name = "COUNTER", class_name = "Counter" } ]
                        [[migrations]]
                        tag = "v1"
                        new_classes = ["Counter"]
                        """
                })
        }
    }
}
