import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    @Suite("Node namespaces defined by a registry (real processes)")
    struct NamespaceDefinitionTests {
        func define(_ client: DurableClient, id: String, className: String, key: NamespaceKey, binding: String?)
            async throws
        {
            let _: Durable_V1_DefineNamespacesResponse = try await client.call(
                Methods.defineNamespaces,
                Durable_V1_DefineNamespacesRequest.with { request in
                    request.namespaces = [
                        .with {
                            $0.id = id
                            $0.className = className
                            $0.idKey = Data(key.secret)
                        }
                    ]
                    if let binding {
                        request.bindings = [
                            .with {
                                $0.name = binding
                                $0.namespaceID = id
                            }
                        ]
                    }
                })
        }

        @Test("defined namespaces serve under their bindings, survive a restart, and dropping deletes their data")
        func defineRestartDrop() async throws {
            let folder = TemporaryDirectory("node-namespaces")
            let key = NamespaceKey.random()
            var node = try await ServerProcess.node(dataDirectory: folder.child("data"))
            var client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            try await define(client, id: "app.Counter.1", className: "Counter", key: key, binding: "TALLY")
            let tally = try await client.namespace("TALLY")
            #expect(tally.namespaceID == "app.Counter.1")
            #expect(tally.idFromName("a") == key.id(forName: "a"), "ids use the registry's key")
            #expect(try await tally.getByName("a").fetch("http://counter/increment").text() == "1")
            let unknownClass = await #expect(throws: DurableObjectError.self) {
                try await define(client, id: "app.Ghost.2", className: "Ghost", key: key, binding: nil)
            }
            #expect(unknownClass?.code == .failedPrecondition)
            #expect(unknownClass?.message.contains("'Ghost'") == true)
            await client.close()
            #expect(await node.stop() == 0)

            node = try await ServerProcess.node(dataDirectory: folder.child("data"))
            client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            let again = try await client.namespace("TALLY")
            #expect(
                try await again.getByName("a").fetch("http://counter/increment").text() == "2", "kept across restart")

            let _: Durable_V1_DropNamespacesResponse = try await client.call(
                Methods.dropNamespaces, Durable_V1_DropNamespacesRequest.with { $0.namespaceIds = ["app.Counter.1"] })
            let gone = await #expect(throws: DurableObjectError.self) {
                try await client.invoke(
                    namespaceID: "app.Counter.1", id: key.id(forName: "a"), request: Request(url: "http://counter/"),
                    timeout: .seconds(5))
            }
            #expect(gone?.code == .notFound)
            await client.close()

            // Defining the same namespace again starts empty: the data went with the column family.
            client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            try await define(client, id: "app.Counter.1", className: "Counter", key: key, binding: "TALLY")
            #expect(try await client.namespace("TALLY").getByName("a").fetch("http://counter/").text() == "0")
            await client.close()
            #expect(await node.stop() == 0)
        }

        @Test("definitions older than the newest applied are ignored: two gateways' pushes in any order keep the newer")
        func olderRevisionsIgnored() async throws {
            let folder = TemporaryDirectory("node-revisions")
            let key = NamespaceKey.random()
            let node = try await ServerProcess.node(dataDirectory: folder.child("data"))
            let client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            func define(revision: UInt64, binding: String) async throws {
                let _: Durable_V1_DefineNamespacesResponse = try await client.call(
                    Methods.defineNamespaces,
                    Durable_V1_DefineNamespacesRequest.with { request in
                        request.namespaces = [
                            .with {
                                $0.id = "app.Counter.1"
                                $0.className = "Counter"
                                $0.idKey = Data(key.secret)
                            }
                        ]
                        request.bindings = [
                            .with {
                                $0.name = binding
                                $0.namespaceID = "app.Counter.1"
                            }
                        ]
                        request.complete = true
                        request.registryRevision = revision
                    })
            }
            try await define(revision: 5, binding: "NEWER")
            // The push of an older publish arrives late: answered, but not applied.
            try await define(revision: 4, binding: "OLDER")
            #expect(try await client.namespace("NEWER").namespaceID == "app.Counter.1")
            let older = await #expect(throws: DurableObjectError.self) { try await client.namespace("OLDER") }
            #expect(older?.code == .notFound)
            // The same revision again (another gateway telling of the same publish) and newer ones apply.
            try await define(revision: 6, binding: "NEWEST")
            #expect(try await client.namespace("NEWEST").namespaceID == "app.Counter.1")
            await client.close()
            #expect(await node.stop() == 0)
        }
    }
}
