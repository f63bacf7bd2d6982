import DurableWire
import Foundation

/// The executables `swift build` put beside the test binary.
public enum BuiltExecutable {
    /// The folder of the test binary, where SwiftPM puts every executable product.
    public static var folder: URL {
        URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
    }

    /// The `durable` command line (the example app).
    public static var durable: URL { folder.appendingPathComponent("durable") }

    /// The example app's command line with the test fixtures: the DIAGNOSTIC binding on every node
    /// (`DiagnosticObject`) and `debug-crash-writer`.
    public static var testServer: URL { folder.appendingPathComponent("durable-test-server") }

    /// The executable product `name`.
    public static func named(_ name: String) -> URL { folder.appendingPathComponent(name) }
}

/// A `durable node`, `durable gateway` or `durable dev` child process, ready once it printed the address it
/// listens on.
public final class ServerProcess: Sendable {
    /// The child process.
    public let child: ChildProcess
    /// The RPC port: the node's port, or the gateway's (or `durable dev`'s) RPC port.
    public let port: Int
    /// The HTTP bridge's port (gateway and dev).
    public let httpPort: Int?
    /// The Prometheus endpoint's port, when started with `--metrics-port`.
    public let metricsPort: Int?
    /// The data folder it was started on.
    public let dataDirectory: String

    private init(child: ChildProcess, port: Int, httpPort: Int?, metricsPort: Int?, dataDirectory: String) {
        self.child = child
        self.port = port
        self.httpPort = httpPort
        self.metricsPort = metricsPort
        self.dataDirectory = dataDirectory
    }

    /// Starts `durable` (or `executable`) with `commandLine` and waits until it says where it listens.
    ///
    /// - Parameters:
    ///   - keys: whether to give it the ``TestKeys`` in its environment (else no key variable at all).
    ///   - environment: its whole environment instead (the keys are then not added).
    ///   - listeningOn: the address it prints it listens on (a ``NetworkLab`` host's, for one started there).
    public static func launch(
        _ commandLine: [String], dataDirectory: String, keys: Bool = true, environment: [String: String]? = nil,
        executable: URL = BuiltExecutable.durable, directory: URL? = nil, listeningOn address: String = "127.0.0.1"
    ) async throws -> ServerProcess {
        let child = try await offPool {
            try ChildProcess(
                executable, commandLine, environment: environment ?? TestKeys.environment(included: keys),
                directory: directory, name: "durable \(commandLine.first ?? "")")
        }
        let ready = try await child.waitForLine { line -> (Int, Int?)? in
            if let range = line.range(of: "Ready on http://127.0.0.1:") ?? line.range(of: "Ready on https://127.0.0.1:")
            {
                // durable dev: "Ready on http://127.0.0.1:HTTP (… 127.0.0.1:RPC)"
                let http = Int(line[range.upperBound...].prefix { $0.isNumber })
                let rpc = line.range(of: "on 127.0.0.1:", range: range.upperBound..<line.endIndex).flatMap {
                    Int(line[$0.upperBound...].prefix { $0.isNumber })
                }
                guard let rpc else { return nil }
                return (rpc, http)
            }
            guard let range = line.range(of: "listening on \(address):"),
                let port = Int(line[range.upperBound...].prefix { $0.isNumber })
            else { return nil }
            let http = (line.range(of: "http://\(address):") ?? line.range(of: "https://\(address):")).flatMap {
                Int(line[$0.upperBound...].prefix { $0.isNumber })
            }
            return (port, http)
        }
        var metrics: Int?
        if commandLine.contains("--metrics-port") {
            metrics = try await child.waitForLine { line in
                line.range(of: "metrics on http://127.0.0.1:").flatMap {
                    Int(line[$0.upperBound...].prefix { $0.isNumber })
                }
            }
        }
        return ServerProcess(
            child: child, port: ready.0, httpPort: ready.1, metricsPort: metrics, dataDirectory: dataDirectory)
    }

    /// Starts a storage node on `dataDirectory` (at warning level, on a port the system picks).
    ///
    /// - Parameter executable: ``BuiltExecutable/testServer`` for a node that also serves the DIAGNOSTIC binding.
    public static func node(
        dataDirectory: String, executable: URL = BuiltExecutable.durable, arguments: [String] = [],
        keys: Bool = true
    ) async throws -> ServerProcess {
        try await launch(
            ["node", "--port", "0", "--data", dataDirectory, "--log-level", "warning"] + arguments,
            dataDirectory: dataDirectory, keys: keys, executable: executable)
    }

    /// Starts a gateway on `dataDirectory` (RPC and HTTP on ports the system picks unless `arguments` name them).
    ///
    /// - Parameter environment: variables added to its environment (the ``TestKeys`` are there already).
    public static func gateway(
        dataDirectory: String, arguments: [String] = [], environment: [String: String] = [:]
    ) async throws -> ServerProcess {
        let rpcPort = arguments.contains("--rpc-port") ? [] : ["--rpc-port", "0"]
        let httpPort = arguments.contains("--port") ? [] : ["--port", "0"]
        return try await launch(
            ["gateway"] + rpcPort + httpPort + ["--data", dataDirectory, "--log-level", "warning"] + arguments,
            dataDirectory: dataDirectory,
            environment: TestKeys.environment(included: true).merging(environment) { $1 })
    }

    /// Starts `durable dev` (by default the example app's) on `dataDirectory`; it makes its own keys there.
    public static func dev(
        dataDirectory: String, arguments: [String] = [], executable: URL = BuiltExecutable.durable,
        directory: URL? = nil
    ) async throws -> ServerProcess {
        try await launch(
            ["dev", "--port", "0", "--rpc-port", "0", "--data", dataDirectory, "--log-level", "warning"] + arguments,
            dataDirectory: dataDirectory, keys: false, executable: executable, directory: directory)
    }

    /// Sends SIGTERM and waits for the exit and the end of its output; returns the exit status (-1 when it had to
    /// be killed after two minutes).
    @discardableResult
    public func stop() async -> Int32 {
        child.send(SIGTERM)
        return (try? await child.outcome(within: .seconds(120)))?.status ?? -1
    }

    /// Sends SIGINT (Ctrl-C) and waits for the exit and the end of its output; returns the exit status (-1 when it
    /// had to be killed after two minutes).
    @discardableResult
    public func interrupt() async -> Int32 {
        child.send(SIGINT)
        return (try? await child.outcome(within: .seconds(120)))?.status ?? -1
    }

    /// Kills it with SIGKILL and waits until it is gone.
    public func crash() async {
        child.send(SIGKILL)
        _ = try? await child.exitStatus()
    }

    /// The pid.
    public var pid: Int32 { child.pid }
}

/// The keys the test clusters run with, handed to each child in its environment.
public enum TestKeys {
    /// The cluster secret's text.
    public static let clusterText = "test-cluster-secret-0123456789abcdef"
    /// The admin token's text.
    public static let adminText = "test-admin-token-0123456789abcdef"
    /// The API token's text.
    public static let apiText = "test-api-token-0123456789abcdef"

    /// What nodes and gateway prove to each other (and tests that call a node directly).
    public static let cluster = try! RPCKey(clusterText, role: .cluster)
    /// What `durable publish` proves.
    public static let admin = try! RPCKey(adminText, role: .admin)
    /// What clients of the gateway prove.
    public static let api = try! RPCKey(apiText, role: .client)

    /// This process's environment, with the keys (or without any `DURABLE_*` key variable).
    public static func environment(included: Bool) -> [String: String] {
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
