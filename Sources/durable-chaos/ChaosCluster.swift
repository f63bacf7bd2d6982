import DurableWire
import Foundation
import Synchronization

/// One `durable` child process of the cluster under test: started, killed, paused and restarted on the same
/// ports, so that the others find it again.
final class ClusterMember: @unchecked Sendable {
    /// `gateway`, `node1`, …
    let name: String
    private let executable: URL
    private let makeArguments: (_ ports: [Int]) -> [String]
    private let environment: [String: String]
    private let logFile: URL
    private var process: Process?
    /// The ports it listens on, once first started: the RPC port first (and the HTTP port for a gateway).
    private(set) var ports: [Int] = []
    /// How many times it was started.
    private(set) var starts = 0

    init(
        name: String, executable: URL, environment: [String: String], logFolder: URL,
        arguments: @escaping (_ ports: [Int]) -> [String]
    ) {
        self.name = name
        self.executable = executable
        self.environment = environment
        self.makeArguments = arguments
        self.logFile = logFolder.appendingPathComponent("\(name).log")
    }

    /// The RPC port.
    var port: Int { ports[0] }

    /// Starts the process and waits (up to 30 s) for its "listening on HOST:PORT" line.
    ///
    /// - Throws: ``ChaosError`` when it exits or stays silent; its log is named.
    func start() throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = makeArguments(ports)
        process.environment = environment
        if !FileManager.default.fileExists(atPath: logFile.path) {
            _ = FileManager.default.createFile(atPath: logFile.path, contents: nil)
        }
        let log = try FileHandle(forWritingTo: logFile)
        log.seekToEndOfFile()
        process.standardError = log
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        self.process = process
        starts += 1
        let found = Mutex<[Int]?>(nil)
        let ready = DispatchSemaphore(value: 0)
        let reader = pipe.fileHandleForReading
        Thread.detachNewThread {
            var buffer: [UInt8] = []
            var signalled = false
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                buffer.append(contentsOf: data)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: buffer[..<newline], as: UTF8.self)
                    buffer.removeSubrange(...newline)
                    if !signalled, let ports = Self.ports(in: line) {
                        found.withLock { $0 = ports }
                        signalled = true
                        ready.signal()
                    }
                }
            }
            if !signalled { ready.signal() }
        }
        guard ready.wait(timeout: .now() + 30) == .success, let ports = found.withLock({ $0 }) else {
            kill(SIGKILL)
            throw ChaosError("\(name) did not start listening (see \(logFile.path))")
        }
        if self.ports.isEmpty { self.ports = ports }
    }

    /// The ports of a "listening on 127.0.0.1:PORT" line (and "http://127.0.0.1:PORT" on the same line).
    private static func ports(in line: String) -> [Int]? {
        guard let range = line.range(of: "listening on 127.0.0.1:") else { return nil }
        var ports = [Int(line[range.upperBound...].prefix { $0.isNumber }) ?? 0]
        if let web = line.range(of: "http://127.0.0.1:") {
            ports.append(Int(line[web.upperBound...].prefix { $0.isNumber }) ?? 0)
        }
        return ports
    }

    /// Sends `signal` to the process; for SIGKILL and SIGTERM, waits until it has exited and returns its status.
    @discardableResult
    func kill(_ signal: Int32) -> Int32? {
        guard let process, process.isRunning else { return nil }
        Foundation.kill(process.processIdentifier, signal)
        guard signal == SIGKILL || signal == SIGTERM else { return nil }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Whether the process runs.
    var isRunning: Bool { process?.isRunning ?? false }

    deinit {
        if let process, process.isRunning {
            Foundation.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A gateway and its nodes as child processes on loopback, with keys made for the run.
final class ChaosCluster: @unchecked Sendable {
    let gateway: ClusterMember
    let nodes: [ClusterMember]
    /// What clients prove to the gateway.
    let apiToken: RPCKey

    init(executable: URL, folder: URL, nodeCount: Int) throws {
        let clusterSecret = RPCKey.randomText()
        let adminToken = RPCKey.randomText()
        let apiText = RPCKey.randomText()
        apiToken = try RPCKey(apiText, role: .client)
        var environment = ProcessInfo.processInfo.environment
        environment["DURABLE_CLUSTER_SECRET"] = clusterSecret
        environment["DURABLE_ADMIN_TOKEN"] = adminToken
        environment["DURABLE_API_TOKEN"] = apiText
        let gatewayData = folder.appendingPathComponent("gateway").path
        gateway = ClusterMember(
            name: "gateway", executable: executable, environment: environment, logFolder: folder
        ) { ports in
            [
                "gateway", "--rpc-port", "\(ports.first ?? 0)", "--port", "\(ports.count > 1 ? ports[1] : 0)",
                "--data", gatewayData, "--log-level", "notice",
            ]
        }
        let gateway = self.gateway
        nodes = (1...nodeCount).map { number in
            let data = folder.appendingPathComponent("node\(number)").path
            return ClusterMember(
                name: "node\(number)", executable: executable, environment: environment, logFolder: folder
            ) { ports in
                [
                    "node", "--port", "\(ports.first ?? 0)", "--data", data, "--node-id", "node\(number)",
                    "--gateway", "127.0.0.1:\(gateway.port)", "--log-level", "notice",
                ]
            }
        }
    }

    /// Every member.
    var members: [ClusterMember] { [gateway] + nodes }

    /// Starts the gateway, then the nodes.
    func start() throws {
        try gateway.start()
        for node in nodes { try node.start() }
    }

    /// Stops every member with SIGTERM (nodes first); returns the members that did not exit with status 0.
    func stopGracefully() -> [String] {
        var unclean: [String] = []
        for member in nodes + [gateway] {
            if let status = member.kill(SIGTERM), status != 0 { unclean.append("\(member.name) (status \(status))") }
        }
        return unclean
    }
}

/// What stops a chaos run.
struct ChaosError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
