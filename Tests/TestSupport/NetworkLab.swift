import Foundation
import Synchronization

/// Hosts of a test on this machine, each a Linux network namespace with an address of its own, so that faults
/// between hosts are real: a host cut off from the network (``cutOff(_:)``) loses its packets silently, as a
/// machine whose link failed does, while the processes on it keep running.
///
/// The hosts hang off a bridge the lab makes in the test's own namespace, on `10.213.N.0/24` (N chosen per lab;
/// the bridge is `.254`): the test reaches every host, and the hosts reach each other. Nothing else is reachable
/// from a host (it has no default route), and the lab's addresses exist only while the lab does: ``remove()``
/// deletes the namespaces and the bridge. Needs root and iproute2 (`ip`), as in CI.
///
/// ```swift
/// let lab = try await NetworkLab.make(hosts: 2)
/// let node = try await lab.launch(on: lab.hosts[0], ["node", "--host", lab.hosts[0].address, …], dataDirectory: …)
/// try await lab.cutOff(lab.hosts[0])
/// ```
public final class NetworkLab: Sendable {
    /// One host: a namespace, its side of a veth pair, and its address.
    public struct Host: Sendable, Hashable {
        /// The namespace's name (`ip netns exec NAME …` runs a command there).
        public let namespace: String
        /// The host's interface (inside the namespace).
        public let interface: String
        /// The host's IPv4 address.
        public let address: String
    }

    /// The hosts, in order.
    public let hosts: [Host]
    /// The bridge in the test's namespace, with the address `subnet.254`.
    public let bridge: String
    private let removed = Atomic<Bool>(false)

    /// Where iproute2's `ip` is.
    public static let ip = URL(fileURLWithPath: "/usr/sbin/ip")

    /// Whether this machine can make a lab (root and `ip`).
    public static var isAvailable: Bool { getuid() == 0 && FileManager.default.isExecutableFile(atPath: ip.path) }

    private init(hosts: [Host], bridge: String) {
        self.hosts = hosts
        self.bridge = bridge
    }

    /// Makes `count` hosts on a bridge of their own.
    ///
    /// - Throws: the failing `ip` command and its error (everything made until then is removed).
    public static func make(hosts count: Int) async throws -> NetworkLab {
        // Interface names are at most 15 bytes: `dl` + 5 hex digits + a role letter + the host's number.
        let tag = String(format: "%05x", UInt32.random(in: 0..<0xFFFFF))
        let subnet = "10.213.\(Int.random(in: 1...250))"
        let hosts = (1...max(1, count)).map { number in
            Host(namespace: "dl\(tag)-h\(number)", interface: "dl\(tag)h\(number)", address: "\(subnet).\(number)")
        }
        let lab = NetworkLab(hosts: hosts, bridge: "dl\(tag)br")
        do {
            try await run(["link", "add", lab.bridge, "type", "bridge"])
            try await run(["addr", "add", "\(subnet).254/24", "dev", lab.bridge])
            try await run(["link", "set", lab.bridge, "up"])
            for (index, host) in hosts.enumerated() {
                let outside = "dl\(tag)b\(index + 1)"
                try await run(["netns", "add", host.namespace])
                try await run(["link", "add", outside, "type", "veth", "peer", "name", host.interface])
                try await run(["link", "set", host.interface, "netns", host.namespace])
                try await run(["link", "set", outside, "master", lab.bridge, "up"])
                try await run([
                    "netns", "exec", host.namespace, "ip", "addr", "add", "\(host.address)/24", "dev", host.interface,
                ])
                try await run(["netns", "exec", host.namespace, "ip", "link", "set", host.interface, "up"])
                try await run(["netns", "exec", host.namespace, "ip", "link", "set", "lo", "up"])
            }
        } catch {
            await lab.remove()
            throw error
        }
        return lab
    }

    /// Starts `durable` (or `executable`) with `commandLine` on `host` and waits until it says where it listens
    /// (see ``ServerProcess/launch(_:dataDirectory:keys:environment:executable:directory:)``).
    public func launch(
        on host: Host, _ commandLine: [String], dataDirectory: String, environment: [String: String]? = nil,
        executable: URL = BuiltExecutable.durable
    ) async throws -> ServerProcess {
        try await ServerProcess.launch(
            ["netns", "exec", host.namespace, executable.path] + commandLine, dataDirectory: dataDirectory,
            environment: environment, executable: Self.ip, listeningOn: host.address)
    }

    /// Cuts `host` off: its link goes down, so every packet to or from it is lost without an answer (connections
    /// time out; the processes on it keep running).
    public func cutOff(_ host: Host) async throws {
        try await Self.run(["netns", "exec", host.namespace, "ip", "link", "set", host.interface, "down"])
    }

    /// Brings a host that was cut off back (its address is kept).
    public func reconnect(_ host: Host) async throws {
        try await Self.run(["netns", "exec", host.namespace, "ip", "link", "set", host.interface, "up"])
    }

    /// Partitions two hosts from each other alone: each drops what it sends to the other (a blackhole route in
    /// each namespace), so no packet and no connection passes between them, while both still reach every other
    /// host. ``heal(_:_:)`` undoes it.
    public func partition(_ one: Host, _ other: Host) async throws {
        try await Self.run(["netns", "exec", one.namespace, "ip", "route", "add", "blackhole", "\(other.address)/32"])
        try await Self.run(["netns", "exec", other.namespace, "ip", "route", "add", "blackhole", "\(one.address)/32"])
    }

    /// Ends a ``partition(_:_:)`` of the two hosts.
    public func heal(_ one: Host, _ other: Host) async throws {
        try await Self.run(["netns", "exec", one.namespace, "ip", "route", "del", "blackhole", "\(other.address)/32"])
        try await Self.run(["netns", "exec", other.namespace, "ip", "route", "del", "blackhole", "\(one.address)/32"])
    }

    /// Deletes the hosts' namespaces (their interfaces go with them) and the bridge. Processes still running in a
    /// namespace lose their network; stop them first.
    public func remove() async {
        guard !removed.exchange(true, ordering: .relaxed) else { return }
        for host in hosts { try? await Self.run(["netns", "delete", host.namespace]) }
        try? await Self.run(["link", "delete", bridge])
    }

    /// Runs one `ip` command to its end.
    ///
    /// - Throws: when it exits non-zero, with its command line and error output.
    static func run(_ arguments: [String]) async throws {
        let outcome = try await ChildProcess.run(ip, arguments, timeLimit: .seconds(30))
        guard outcome.status == 0 else {
            throw ChildProcess.Failure(
                description: "ip \(arguments.joined(separator: " ")) failed (\(outcome.status)): \(outcome.errors)")
        }
    }

    deinit {
        guard !removed.load(ordering: .relaxed) else { return }
        // A lab that was not removed (a test that threw before its cleanup) is removed now, synchronously.
        for arguments in hosts.map({ ["netns", "delete", $0.namespace] }) + [["link", "delete", bridge]] {
            let process = Process()
            process.executableURL = Self.ip
            process.arguments = arguments
            try? process.run()
            process.waitUntilExit()
        }
    }
}
