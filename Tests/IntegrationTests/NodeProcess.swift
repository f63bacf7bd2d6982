import DurableWire
import Foundation
import Testing

/// A `durable node` (or `durable gateway`) child process on a loopback port chosen by the OS.
final class NodeProcess: @unchecked Sendable {
    let process = Process()
    let port: Int
    /// The worker's HTTP port, for a gateway.
    let httpPort: Int?
    /// The port of the Prometheus endpoint, when started with `--metrics-port`.
    let metricsPort: Int?
    let dataDirectory: String
    private let output: LineReader

    /// Starts a node on `dataDirectory` and waits for its "listening" line.
    convenience init(dataDirectory: String, arguments: [String] = [], keys: Bool = true) throws {
        try self.init(
            dataDirectory: dataDirectory,
            commandLine: ["node", "--port", "0", "--data", dataDirectory, "--log-level", "warning"] + arguments,
            keys: keys)
    }

    /// Starts `durable` with `commandLine` and waits for its "listening on 127.0.0.1:PORT" line.
    ///
    /// - Parameter keys: whether to hand it the ``TestKeys`` in its environment (else none at all).
    /// - Parameter errorLog: a file that receives its standard error (its log), if given.
    /// - Parameter environment: its whole environment, instead of this process's with or without the keys.
    init(
        dataDirectory: String, commandLine: [String], keys: Bool = true, errorLog: String? = nil,
        environment: [String: String]? = nil
    ) throws {
        self.dataDirectory = dataDirectory
        process.executableURL = DurableExecutable.url
        process.arguments = commandLine
        process.environment = environment ?? TestKeys.environment(included: keys)
        if let errorLog {
            _ = FileManager.default.createFile(atPath: errorLog, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: errorLog)
        }
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        output = LineReader(pipe.fileHandleForReading)
        var found: Int?
        var http: Int?
        var metrics: Int?
        // The metrics line comes before or after the listening line; wait for it only when metrics were asked for.
        let expectsMetrics = commandLine.contains("--metrics-port")
        while let line = output.nextLine() {
            if let range = line.range(of: "metrics on http://127.0.0.1:") {
                metrics = Int(line[range.upperBound...].prefix { $0.isNumber })
            }
            if let range = line.range(of: "listening on 127.0.0.1:") {
                found = Int(line[range.upperBound...].prefix { $0.isNumber })
                if let web = line.range(of: "http://127.0.0.1:") {
                    http = Int(line[web.upperBound...].prefix { $0.isNumber })
                }
            }
            if found != nil && (metrics != nil || !expectsMetrics) { break }
        }
        httpPort = http
        metricsPort = metrics
        guard let found else {
            process.terminate()
            throw NodeProcessError(message: "the node exited before it listened")
        }
        port = found
    }

    /// Starts a gateway on `dataDirectory`.
    static func gateway(dataDirectory: String, arguments: [String] = []) throws -> NodeProcess {
        try NodeProcess(
            dataDirectory: dataDirectory,
            commandLine: [
                "gateway", "--rpc-port", "0", "--port", "0", "--data", dataDirectory, "--log-level", "warning",
            ] + arguments)
    }

    /// Starts a node without blocking the cooperative pool.
    static func launch(dataDirectory: String, arguments: [String] = [], keys: Bool = true) async throws -> NodeProcess {
        try await offPool { try NodeProcess(dataDirectory: dataDirectory, arguments: arguments, keys: keys) }
    }

    /// Starts a gateway without blocking the cooperative pool.
    static func launchGateway(dataDirectory: String, arguments: [String] = []) async throws -> NodeProcess {
        try await offPool { try NodeProcess.gateway(dataDirectory: dataDirectory, arguments: arguments) }
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

/// The keys the test clusters run with, handed to each child in its environment.
enum TestKeys {
    static let clusterText = "test-cluster-secret-0123456789abcdef"
    static let adminText = "test-admin-token-0123456789abcdef"
    static let apiText = "test-api-token-0123456789abcdef"

    /// What nodes and gateway prove to each other (and tests that call a node directly).
    static let cluster = try! RPCKey(clusterText, role: .cluster)
    /// What `durable publish` proves.
    static let admin = try! RPCKey(adminText, role: .admin)
    /// What clients of the gateway prove.
    static let api = try! RPCKey(apiText, role: .client)

    /// This process's environment, with the keys (or without any `DURABLE_*` key variable).
    static func environment(included: Bool) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        for name in ["DURABLE_CLUSTER_SECRET", "DURABLE_ADMIN_TOKEN", "DURABLE_API_TOKEN"] {
            environment[name] = nil
        }
        if included {
            environment["DURABLE_CLUSTER_SECRET"] = clusterText
            environment["DURABLE_ADMIN_TOKEN"] = adminText
            environment["DURABLE_API_TOKEN"] = apiText
        }
        return environment
    }
}

struct NodeProcessError: Error {
    var message: String
}
