import DurableClient
import DurableObjects
import DurableWire
import Foundation
import Testing
import WireTestSupport

/// A `durable dev` child process, ready once it printed its URL.
final class DevProcess: @unchecked Sendable {
    let process = Process()
    let httpPort: Int
    let rpcPort: Int
    /// The port of the Prometheus endpoint, when started with `--metrics-port`.
    let metricsPort: Int?
    private let output: LineReader

    /// Starts `durable dev` with `arguments` and waits for "Ready on http://127.0.0.1:PORT (… 127.0.0.1:RPC)".
    init(arguments: [String], executable: URL = DurableExecutable.url, directory: URL? = nil) throws {
        process.executableURL = executable
        process.currentDirectoryURL = directory
        process.arguments = ["dev", "--port", "0", "--rpc-port", "0", "--log-level", "warning"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        output = LineReader(pipe.fileHandleForReading)
        var ports: (Int, Int)?
        var metrics: Int?
        // The metrics line comes before or after the ready line; wait for it only when metrics were asked for.
        let expectsMetrics = arguments.contains("--metrics-port")
        while let line = output.nextLine() {
            if let range = line.range(of: "metrics on http://127.0.0.1:") {
                metrics = Int(line[range.upperBound...].prefix { $0.isNumber })
            }
            if ports != nil && (metrics != nil || !expectsMetrics) { break }
            guard let web = line.range(of: "Ready on http://127.0.0.1:") else { continue }
            let rpc = line.range(of: "on 127.0.0.1:", range: web.upperBound..<line.endIndex)
            ports = (
                Int(line[web.upperBound...].prefix { $0.isNumber }) ?? 0,
                rpc.flatMap { Int(line[$0.upperBound...].prefix { $0.isNumber }) } ?? 0
            )
            if metrics != nil || !expectsMetrics { break }
        }
        guard let ports else {
            process.terminate()
            throw NodeProcessError(message: "durable dev exited before it was ready")
        }
        (httpPort, rpcPort) = ports
        metricsPort = metrics
    }

    static func launch(
        _ arguments: [String], executable: URL = DurableExecutable.url, directory: URL? = nil
    ) async throws -> DevProcess {
        try await offPool { try DevProcess(arguments: arguments, executable: executable, directory: directory) }
    }

    /// Sends SIGINT (Ctrl-C), waits, and returns the exit status and the rest of the output.
    func interrupt() async throws -> (status: Int32, output: [String]) {
        try await offPool {
            kill(self.process.processIdentifier, SIGINT)
            var lines: [String] = []
            while let line = self.output.nextLine() { lines.append(line) }
            self.process.waitUntilExit()
            return (self.process.terminationStatus, lines)
        }
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

@Suite("durable dev (a real process)")
struct DevTests {
    @Test("serves the seed examples over HTTP and RPC, stops cleanly on Ctrl-C, and keeps data across restarts")
    func devServesAndRestarts() async throws {
        let folder = TemporaryDirectory("dev")
        let data = folder.child("data")
        var dev = try await DevProcess.launch(["--data", data, "--nodes", "2"])
        var web = "http://127.0.0.1:\(dev.httpPort)"
        let stored = try await HTTPTestClient.send(
            web + "/", method: "POST", headers: ["Content-Type": "text/plain"], body: "important data!")
        #expect(stored.text == "127.0.0.1 stored important data!")
        #expect(try await HTTPTestClient.send(web + "/counter/increment").text == "Durable Object 'A' count: 1")
        #expect(try await HTTPTestClient.send(web + "/counter/increment").text == "Durable Object 'A' count: 2")
        // The RPC port takes only the keys `durable dev` made in the data folder, readable by their owner only.
        let apiToken = try RPCKey(String(contentsOfFile: data + "/secrets/api-token", encoding: .utf8), role: .client)
        for name in ["cluster-secret", "admin-token", "api-token"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: data + "/secrets/" + name)
            #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(name) must be readable by its owner only")
        }
        let stranger = DurableClient(host: "127.0.0.1", port: dev.rpcPort)
        let refused = await #expect(throws: DurableObjectError.self) {
            try await stranger.namespace("COUNTER")
        }
        #expect(
            refused?.message.contains("needs an authenticated connection") == true, "\(String(describing: refused))")
        await stranger.close()
        let client = DurableClient(host: "127.0.0.1", port: dev.rpcPort, credentials: apiToken)
        #expect(try await client.namespace("COUNTER").getByName("A").fetch("http://counter/decrement").text() == "1")
        await client.close()

        let stop = try await dev.interrupt()
        #expect(stop.status == 0)
        #expect(stop.output.contains { $0.contains("durable dev stopped") }, "\(stop.output)")

        dev = try await DevProcess.launch(["--data", data, "--nodes", "2"])
        web = "http://127.0.0.1:\(dev.httpPort)"
        #expect(try await HTTPTestClient.send(web + "/counter/").text == "Durable Object 'A' count: 1")
        // The same keys after a restart.
        let again = DurableClient(host: "127.0.0.1", port: dev.rpcPort, credentials: apiToken)
        #expect(try await again.namespace("COUNTER").getByName("A").fetch("http://counter/").text() == "1")
        await again.close()
        #expect(try await dev.interrupt().status == 0)
    }
}
