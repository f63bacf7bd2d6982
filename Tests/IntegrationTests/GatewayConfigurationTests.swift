import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// `durable gateway --config FILE --env NAME`: what a gateway publishes at start and which bindings it serves.
    @Suite("A gateway started with --config and --env (real processes)")
    struct GatewayConfigurationTests {
        static let configuration = """
            name = "example-app"

            [durable_objects]
            bindings = [ { name = "COUNTER", class_name = "Counter" } ]

            [env.staging]
            durable_objects.bindings = [ { name = "TALLY", class_name = "Counter" } ]

            [env.staging.vars]
            GREETING = "staging"

            [[migrations]]
            tag = "v1"
            new_classes = ["Counter"]
            """

        @Test("the environment's bindings are served, the top level's are not, over RPC and to the worker")
        func environmentBindings() async throws {
            let folder = TemporaryDirectory("gateway-env")
            let file = folder.child("durable.toml")
            try Self.configuration.write(toFile: file, atomically: true, encoding: .utf8)
            let gateway = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"), arguments: ["--config", file, "--env", "staging"])
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("node"), arguments: ["--gateway", "127.0.0.1:\(gateway.port)"])
            let client = DurableClient(host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api)
            let tally = try await client.namespace("TALLY")
            #expect(try await tally.getByName("a").fetch("http://counter/increment").text() == "1")
            #expect(try await tally.getByName("a").fetch("http://counter/increment").text() == "2")
            let top = await #expect(throws: DurableObjectError.self) { try await client.namespace("COUNTER") }
            #expect(top?.code == .notFound)
            #expect(top?.message == "No Durable Object binding named 'COUNTER' (bindings: TALLY).")
            // The example worker reaches COUNTER, which staging does not bind.
            let web = try await HTTPTestClient.send("http://127.0.0.1:\(gateway.httpPort!)/counter/increment")
            #expect(web.status == 500)
            #expect(web.text.contains("No Durable Object binding named 'COUNTER'"), "\(web.text)")
            await client.close()
            #expect(await node.stop() == 0)
            #expect(await gateway.stop() == 0)
        }

        @Test("a broken configuration or an unknown environment stops the gateway at start, naming the problem")
        func brokenConfiguration() async throws {
            let folder = TemporaryDirectory("gateway-config")
            let broken = folder.child("broken.toml")
            try "name = \"example-app\"\n[durable_objects]\nbindings = [ { class_name = \"Counter\" } ]\n".write(
                toFile: broken, atomically: true, encoding: .utf8)
            let refused = try await ChildProcess.run(
                BuiltExecutable.durable,
                ["gateway", "--port", "0", "--rpc-port", "0", "--data", folder.child("g1"), "--config", broken],
                environment: TestKeys.environment(included: true))
            #expect(refused.status != 0)
            #expect(refused.errors.contains("broken.toml"), "\(refused.errors)")
            #expect(refused.errors.contains("durable_objects.bindings[0].name"), "\(refused.errors)")

            let file = folder.child("durable.toml")
            try Self.configuration.write(toFile: file, atomically: true, encoding: .utf8)
            let unknown = try await ChildProcess.run(
                BuiltExecutable.durable,
                [
                    "gateway", "--port", "0", "--rpc-port", "0", "--data", folder.child("g2"), "--config", file,
                    "--env",
                    "nope",
                ], environment: TestKeys.environment(included: true))
            #expect(unknown.status != 0)
            #expect(unknown.errors.contains("env.nope"), "\(unknown.errors)")
        }
    }
}
