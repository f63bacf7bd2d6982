import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

/// Runs `durable` to completion with `arguments` and `environment`; returns its status, output and error output.
func runDurable(_ arguments: [String], environment: [String: String]) async throws -> ChildProcess.Outcome {
    try await ChildProcess.run(BuiltExecutable.durable, arguments, environment: environment)
}

extension ProcessTests {
    @Suite("Authentication between real processes")
    struct AuthenticationProcessTests {
        @Test("node and gateway refuse to start without their keys, naming what is missing")
        func keysRequired() async throws {
            let folder = TemporaryDirectory("auth-start")
            let bare = TestKeys.environment(included: false)
            let node = try await runDurable(["node", "--port", "0", "--data", folder.child("node")], environment: bare)
            #expect(node.status != 0)
            #expect(
                node.errors.contains("durable node needs the cluster secret: set DURABLE_CLUSTER_SECRET"), "\(node)")
            var onlySecret = bare
            onlySecret["DURABLE_CLUSTER_SECRET"] = TestKeys.clusterText
            let gateway = try await runDurable(
                ["gateway", "--port", "0", "--rpc-port", "0", "--data", folder.child("gateway")],
                environment: onlySecret)
            #expect(gateway.status != 0)
            #expect(gateway.errors.contains("durable gateway needs an admin token"), "\(gateway)")
            var short = bare
            short["DURABLE_CLUSTER_SECRET"] = "tiny"
            let tooShort = try await runDurable(
                ["node", "--port", "0", "--data", folder.child("node")], environment: short)
            #expect(tooShort.errors.contains("The cluster secret is 4 characters long"), "\(tooShort)")
            let mixed = try await runDurable(
                ["node", "--port", "0", "--data", folder.child("node"), "--insecure"], environment: onlySecret)
            #expect(mixed.errors.contains("--insecure cannot be combined"), "\(mixed)")
        }

        @Test(
            "nodes take the cluster secret only; gateway callers need a key; only admin tokens publish; no key is logged"
        )
        func clusterKeys() async throws {
            let folder = TemporaryDirectory("auth-cluster")
            let gateway = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"), arguments: ["--log-level", "trace"])
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("node"),
                arguments: ["--gateway", "127.0.0.1:\(gateway.port)", "--log-level", "trace"])

            // Through the gateway with the API token: objects answer.
            let client = DurableClient(host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api)
            #expect(
                try await client.namespace("COUNTER").getByName("a").fetch("http://counter/increment").text() == "1")

            // Without a key, at the gateway and at the node: refused before anything runs.
            for port in [gateway.port, node.port] {
                let stranger = DurableClient(host: "127.0.0.1", port: port)
                let error = await #expect(throws: DurableObjectError.self) { try await stranger.namespace("COUNTER") }
                #expect(
                    error?.message.contains("needs an authenticated connection") == true, "\(String(describing: error))"
                )
                await stranger.close()
            }
            // The API token does not open the node, whose port takes only the cluster secret.
            let withToken = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.api)
            let wrongKey = await #expect(throws: DurableObjectError.self) { try await withToken.namespace("COUNTER") }
            #expect(wrongKey?.message.contains("refused our API token") == true, "\(String(describing: wrongKey))")
            await withToken.close()

            // Publishing takes the admin token.
            let denied = await #expect(throws: DurableObjectError.self) {
                let _: Durable_V1_PublishResponse = try await client.call(Methods.publish, Durable_V1_PublishRequest())
            }
            #expect(
                denied?.message
                    == "durable.v1.Gateway/Publish needs the admin token; this connection proved the API token."
            )
            var environment = TestKeys.environment(included: false)
            let refused = try await runDurable(
                ["publish", "--gateway", "127.0.0.1:\(gateway.port)"], environment: environment)
            #expect(refused.status != 0)
            #expect(refused.errors.contains("needs an authenticated connection"), "\(refused)")
            environment["DURABLE_ADMIN_TOKEN"] = TestKeys.adminText
            let published = try await runDurable(
                ["publish", "--gateway", "127.0.0.1:\(gateway.port)"], environment: environment)
            #expect(published.status == 0, "\(published)")
            #expect(published.output.contains("Published"), "\(published)")

            // A node with another secret cannot join: it stops, saying why.
            var impostorEnvironment = TestKeys.environment(included: false)
            impostorEnvironment["DURABLE_CLUSTER_SECRET"] = "some-other-cluster-secret-42"
            let other = try await ChildProcess.run(
                BuiltExecutable.durable,
                [
                    "node", "--port", "0", "--data", folder.child("impostor"), "--node-id", "impostor", "--gateway",
                    "127.0.0.1:\(gateway.port)",
                ], environment: impostorEnvironment)
            #expect(other.status != 0)
            #expect(other.errors.contains("the gateway refused this node"), "\(other.errors)")
            #expect(other.errors.contains("refused our cluster secret"), "\(other.errors)")

            await client.close()
            #expect(await node.stop() == 0)
            #expect(await gateway.stop() == 0)
            for (name, text) in [
                ("gateway", gateway.child.errorText), ("node", node.child.errorText), ("impostor", other.errors),
            ] {
                #expect(!text.isEmpty)
                for secret in [TestKeys.clusterText, TestKeys.adminText, TestKeys.apiText, "some-other-cluster-secret"]
                {
                    #expect(!text.contains(secret), "the \(name) logs a key")
                }
            }
        }
    }
}
