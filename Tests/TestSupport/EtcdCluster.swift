import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Several real etcd members (Debian's `etcd-server`) forming one cluster: what tests that kill an etcd member, the
/// leader among them, start. The members listen on loopback, or on a ``NetworkLab`` host's address (all of them on
/// that host, so that cutting a node off from that one address cuts it off from etcd).
public final class EtcdCluster: Sendable {
    private let running: Mutex<[EtcdProcess]>
    private let commandLines: [[String]]

    private init(members: [EtcdProcess], commandLines: [[String]]) {
        running = Mutex(members)
        self.commandLines = commandLines
    }

    /// The members, in the order they were started (a restarted member replaces the one it restarts).
    public var members: [EtcdProcess] { running.withLock { $0 } }

    /// Every member's client URL, comma-separated (what `--etcd` takes).
    public var endpoints: String { members.map(\.clientURL).joined(separator: ",") }

    /// Starts `count` members with their data in folders under `folder` and waits until each serves clients.
    ///
    /// - Parameters:
    ///   - address: the address every member listens on (ports the system picks).
    ///   - host: a ``NetworkLab`` host to run them on (`address` is then its address).
    public static func start(
        members count: Int, folder: String, address: String = "127.0.0.1", on host: NetworkLab.Host? = nil
    ) async throws -> EtcdCluster {
        let ports = try (0..<count).map { _ in (client: try freeLoopbackPort(), peer: try freeLoopbackPort()) }
        let names = (1...count).map { "member-\($0)" }
        let initial = zip(names, ports).map { "\($0)=http://\(address):\($1.peer)" }.joined(separator: ",")
        var members: [EtcdProcess] = []
        var commandLines: [[String]] = []
        for (name, port) in zip(names, ports) {
            let clientURL = "http://\(address):\(port.client)"
            let peerURL = "http://\(address):\(port.peer)"
            let etcd =
                [
                    EtcdProcess.executable.path, "--name", name, "--data-dir", "\(folder)/\(name)",
                    "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                    "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
                    "--initial-cluster", initial, "--initial-cluster-state", "new",
                    "--initial-cluster-token", "durable-test",
                ]
            let commandLine = host.map { ["ip", "netns", "exec", $0.namespace] + etcd } ?? etcd
            commandLines.append(commandLine)
            members.append(EtcdProcess(child: try await launch(commandLine, name: name), clientURL: clientURL))
        }
        // A member is ready once the cluster has a quorum.
        for member in members { try await waitUntilReady(member.child) }
        return EtcdCluster(members: members, commandLines: commandLines)
    }

    /// Starts member `index` again on its data (after it was killed) and waits until it serves clients.
    @discardableResult
    public func restart(_ index: Int) async throws -> EtcdProcess {
        let old = members[index]
        _ = try? await old.child.exitStatus()
        let member = EtcdProcess(
            child: try await Self.launch(commandLines[index], name: "member-\(index + 1)"), clientURL: old.clientURL)
        try await Self.waitUntilReady(member.child)
        running.withLock { $0[index] = member }
        return member
    }

    /// Stops every member still running.
    public func stop() async {
        for member in members { try? await member.stop() }
    }

    private static func launch(_ commandLine: [String], name: String) async throws -> ChildProcess {
        try await offPool {
            try ChildProcess(
                URL(fileURLWithPath: commandLine[0] == "ip" ? NetworkLab.ip.path : commandLine[0]),
                Array(commandLine.dropFirst()), name: "etcd \(name)")
        }
    }

    private static func waitUntilReady(_ child: ChildProcess) async throws {
        _ = try await child.waitForLine(on: .errors, timeout: .seconds(120)) { line in
            line.contains("ready to serve client requests") ? true : nil
        }
    }
}
