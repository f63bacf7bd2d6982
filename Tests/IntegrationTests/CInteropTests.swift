import DurableClient
import Foundation
import Testing
import WireTestSupport

/// The C client, built from the .proto files with protoc-c and libprotobuf-c, calls a Counter on a real node.
@Suite("C interoperability client")
struct CInteropTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// Runs a program; returns its exit status and standard output.
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }

    @Test("builds from the .proto files and increments a counter on a node")
    func cClientCallsNode() async throws {
        let folder = TemporaryDirectory("c-interop")
        let build = try await offPool {
            try Self.run(
                "/bin/bash",
                [Self.repositoryRoot.appendingPathComponent("interop/c/build.sh").path, folder.child("build")])
        }
        try #require(build.status == 0, "the C client must build (protobuf-c-compiler, libprotobuf-c-dev, cc)")
        let binary = folder.child("build/durable_invoke")

        // The C client does not authenticate (it would need an HMAC library), so this node serves everyone.
        let node = try await NodeProcess.launch(
            dataDirectory: folder.child("data"), arguments: ["--insecure"], keys: false)
        let port = "\(node.port)"
        #expect(
            try Self.run(binary, ["127.0.0.1", port, "COUNTER", "from-c", "http://counter/increment"]).output
                == "200 1\n")
        #expect(
            try Self.run(binary, ["127.0.0.1", port, "COUNTER", "from-c", "http://counter/increment"]).output
                == "200 2\n")
        let missing = try Self.run(binary, ["127.0.0.1", port, "NOPE", "x", "/"])
        #expect(missing.status == 1)

        let client = DurableClient(host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster)
        let seen = try await client.namespace("COUNTER").getByName("from-c").fetch("http://counter/").text()
        #expect(seen == "2", "the Swift client sees what the C client wrote")
        await client.close()
        await node.shutDown()
    }
}
