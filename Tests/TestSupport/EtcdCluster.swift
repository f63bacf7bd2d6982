import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Several real etcd members (Debian's `etcd-server`) forming one cluster on loopback ports: what tests that kill
/// an etcd member, the leader among them, start.
public final class EtcdCluster: Sendable {
    /// The members, in the order they were started.
    public let members: [EtcdProcess]

    private init(members: [EtcdProcess]) {
        self.members = members
    }

    /// Every member's client URL, comma-separated (what `--etcd` takes).
    public var endpoints: String { members.map(\.clientURL).joined(separator: ",") }

    /// Starts `count` members with their data in folders under `folder` and waits until each serves clients.
    public static func start(members count: Int, folder: String) async throws -> EtcdCluster {
        let ports = try (0..<count).map { _ in (client: try freeLoopbackPort(), peer: try freeLoopbackPort()) }
        let names = (1...count).map { "member-\($0)" }
        let initial = zip(names, ports).map { "\($0)=http://127.0.0.1:\($1.peer)" }.joined(separator: ",")
        var members: [EtcdProcess] = []
        for (name, port) in zip(names, ports) {
            let clientURL = "http://127.0.0.1:\(port.client)"
            let peerURL = "http://127.0.0.1:\(port.peer)"
            let child = try await offPool {
                try ChildProcess(
                    EtcdProcess.executable,
                    [
                        "--name", name, "--data-dir", "\(folder)/\(name)",
                        "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                        "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
                        "--initial-cluster", initial, "--initial-cluster-state", "new",
                        "--initial-cluster-token", "durable-test",
                    ], name: "etcd \(name)")
            }
            members.append(EtcdProcess(child: child, clientURL: clientURL))
        }
        // A member is ready once the cluster has a quorum.
        for member in members {
            _ = try await member.child.waitForLine(on: .errors, timeout: .seconds(120)) { line in
                line.contains("ready to serve client requests") ? true : nil
            }
        }
        return EtcdCluster(members: members)
    }

    /// Stops every member still running.
    public func stop() async {
        for member in members { try? await member.stop() }
    }
}
