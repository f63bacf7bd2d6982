import DurableWire
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A real etcd member (Debian's `etcd-server`) on loopback ports the system picked, with its data in a folder of
/// the test: what tests of the etcd cluster store talk to. Never a mock.
public final class EtcdProcess: Sendable {
    /// The member's process.
    public let child: ChildProcess
    /// Where clients reach it, e.g. `http://127.0.0.1:40123`.
    public let clientURL: String

    init(child: ChildProcess, clientURL: String) {
        self.child = child
        self.clientURL = clientURL
    }

    /// The `etcd` executable: `$ETCD`, else `/usr/bin/etcd`.
    public static var executable: URL {
        URL(fileURLWithPath: ProcessInfo.processInfo.environment["ETCD"] ?? "/usr/bin/etcd")
    }

    /// Starts a single-member cluster with its data in `dataDirectory` and waits until it serves clients. A port
    /// taken between choosing it and etcd binding it makes etcd exit; the start is then tried again on new ports.
    ///
    /// - Parameter tls: serve clients over https with this certificate, and require client certificates signed by
    ///   its CA (`--client-cert-auth`).
    public static func start(
        dataDirectory: String, name: String = "member-1", tls: TLSFiles? = nil
    ) async throws -> EtcdProcess {
        var lastFailure: (any Error)?
        for _ in 0..<3 {
            let clientPort = try freeLoopbackPort()
            let peerPort = try freeLoopbackPort()
            let clientURL = "\(tls == nil ? "http" : "https")://127.0.0.1:\(clientPort)"
            let tlsArguments =
                tls.map {
                    [
                        "--cert-file", $0.certificate, "--key-file", $0.privateKey, "--trusted-ca-file",
                        $0.certificateAuthority ?? "", "--client-cert-auth",
                    ]
                } ?? []
            let peerURL = "http://127.0.0.1:\(peerPort)"
            let child = try await offPool {
                try ChildProcess(
                    executable,
                    [
                        "--name", name, "--data-dir", dataDirectory,
                        "--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
                        "--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
                        "--initial-cluster", "\(name)=\(peerURL)", "--initial-cluster-state", "new",
                    ] + tlsArguments, name: "etcd \(name)")
            }
            do {
                _ = try await child.waitForLine(on: .errors, timeout: .seconds(60)) { line in
                    line.contains("ready to serve client requests") ? true : nil
                }
                return EtcdProcess(child: child, clientURL: clientURL)
            } catch {
                lastFailure = error
                child.send(SIGKILL)
                _ = try? await child.exitStatus()
            }
        }
        throw lastFailure!
    }

    /// Stops the member (SIGTERM) and waits for it to exit.
    public func stop() async throws {
        child.send(SIGTERM)
        _ = try await child.exitStatus()
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on now (the system's choice for a socket bound to port 0).
public func freeLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw ChildProcess.Failure(description: "socket() failed: errno \(errno)") }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) }
    }
    guard bound == 0 else { throw ChildProcess.Failure(description: "bind() failed: errno \(errno)") }
    let named = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    guard named == 0 else { throw ChildProcess.Failure(description: "getsockname() failed: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}
