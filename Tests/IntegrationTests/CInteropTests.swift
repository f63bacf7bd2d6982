import DurableClient
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// The C client, built from the .proto files with protoc-c and libprotobuf-c, calls a Counter on a real node.
    @Suite("C interoperability client")
    struct CInteropTests {
        static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()

        /// Runs a program to its end; returns what it left.
        static func run(_ executable: String, _ arguments: [String]) async throws -> ChildProcess.Outcome {
            try await ChildProcess.run(URL(fileURLWithPath: executable), arguments)
        }

        @Test("builds from the .proto files and increments a counter on a node")
        func cClientCallsNode() async throws {
            let folder = TemporaryDirectory("c-interop")
            let build = try await Self.run(
                "/bin/bash",
                [Self.repositoryRoot.appendingPathComponent("interop/c/build.sh").path, folder.child("build")])
            try #require(
                build.status == 0,
                "the C client must build (protobuf-c-compiler, libprotobuf-c-dev, cc): \(build.errors)")
            let binary = folder.child("build/durable_invoke")

            // The C client does not authenticate (it would need an HMAC library), so this node serves everyone.
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("data"), arguments: ["--insecure"], keys: false)
            let port = "\(node.port)"
            for expected in 1...2 {
                let call = try await Self.run(
                    binary, ["127.0.0.1", port, "COUNTER", "from-c", "http://counter/increment"])
                #expect(call.status == 0, "\(call.errors)")
                #expect(call.output == "200 \(expected)\n")
            }
            // An unknown binding: the C client prints the node's status code (NOT_FOUND is 5) and message, exits 1.
            let missing = try await Self.run(binary, ["127.0.0.1", port, "NOPE", "x", "/"])
            #expect(missing.status == 1)
            #expect(missing.output.isEmpty)
            #expect(missing.errors.contains("failed: code 5:"), "\(missing.errors)")
            #expect(missing.errors.contains("NOPE"), "\(missing.errors)")
            // A wrong port: nothing listens there.
            let unreachable = try await Self.run(binary, ["127.0.0.1", "1", "COUNTER", "x", "/"])
            #expect(unreachable.status == 1)
            #expect(unreachable.errors.contains("cannot connect to 127.0.0.1:1"), "\(unreachable.errors)")

            let client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
            let seen = try await client.namespace("COUNTER").getByName("from-c").fetch("http://counter/").text()
            #expect(seen == "2", "the Swift client sees what the C client wrote")
            await client.close()
            #expect(await node.stop() == 0)
        }
    }
}
