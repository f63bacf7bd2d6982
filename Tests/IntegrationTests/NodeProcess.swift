import Foundation
import Testing

/// A `durable node` (or `durable gateway`) child process on a loopback port chosen by the OS.
final class NodeProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    /// The worker's HTTP port, for a gateway.
    let httpPort: Int?
    let dataDirectory: String
    private let output: LineReader

    /// Starts a node on `dataDirectory` and waits for its "listening" line.
    convenience init(dataDirectory: String, arguments: [String] = []) throws {
        try self.init(
            dataDirectory: dataDirectory,
            commandLine: ["node", "--port", "0", "--data", dataDirectory, "--log-level", "warning"] + arguments)
    }

    /// Starts `durable` with `commandLine` and waits for its "listening on 127.0.0.1:PORT" line.
    init(dataDirectory: String, commandLine: [String]) throws {
        self.dataDirectory = dataDirectory
        process.executableURL = DurableExecutable.url
        process.arguments = commandLine
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        output = LineReader(pipe.fileHandleForReading)
        var found: Int?
        var http: Int?
        while let line = output.nextLine() {
            if let range = line.range(of: "listening on 127.0.0.1:") {
                found = Int(line[range.upperBound...].prefix { $0.isNumber })
                if let web = line.range(of: "http://127.0.0.1:") {
                    http = Int(line[web.upperBound...].prefix { $0.isNumber })
                }
                break
            }
        }
        httpPort = http
        guard let found else {
            process.terminate()
            throw NodeProcessError(message: "the node exited before it listened")
        }
        port = found
    }

    /// Starts a gateway on `dataDirectory`.
    static func gateway(dataDirectory: String) throws -> NodeProcess {
        try NodeProcess(
            dataDirectory: dataDirectory,
            commandLine: [
                "gateway", "--rpc-port", "0", "--port", "0", "--data", dataDirectory, "--log-level", "warning",
            ])
    }

    /// Starts a node without blocking the cooperative pool.
    static func launch(dataDirectory: String, arguments: [String] = []) async throws -> NodeProcess {
        try await offPool { try NodeProcess(dataDirectory: dataDirectory, arguments: arguments) }
    }

    /// Starts a gateway without blocking the cooperative pool.
    static func launchGateway(dataDirectory: String) async throws -> NodeProcess {
        try await offPool { try NodeProcess.gateway(dataDirectory: dataDirectory) }
    }

    /// Stops with SIGTERM without blocking the cooperative pool; returns the exit status.
    @discardableResult
    func shutDown() async -> Int32 {
        (try? await offPool { self.stop() }) ?? -1
    }

    /// Kills with SIGKILL without blocking the cooperative pool.
    func crash() async {
        _ = try? await offPool { self.kill9() }
    }

    /// Kills the process with SIGKILL and waits for it.
    func kill9() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// Sends SIGTERM and waits for a graceful exit; returns the exit status.
    @discardableResult
    func stop() -> Int32 {
        if process.isRunning { kill(process.processIdentifier, SIGTERM) }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

struct NodeProcessError: Error {
    var message: String
}
