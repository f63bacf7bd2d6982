import ArgumentParser
import DurableWire
import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import UnixSignals

/// The TLS flags of the cluster's processes: the process's certificate and key, and the cluster's CA, which
/// verifies the other processes' certificates (mutual TLS between gateways, nodes and standbys).
struct TLSOptions: ParsableArguments {
    @Option(
        name: .customLong("tls-cert"),
        help:
            "A PEM certificate (chain) to serve TLS with on the RPC port (and HTTPS on a gateway's worker port). Needs --tls-key and --tls-ca. Reloaded on SIGHUP."
    )
    var certificate: String?

    @Option(name: .customLong("tls-key"), help: "The PEM private key of --tls-cert.")
    var privateKey: String?

    @Option(
        name: .customLong("tls-ca"),
        help:
            "The cluster's CA (PEM): the certificates of the other gateways, nodes and standbys must be signed by it, and this process presents --tls-cert to them."
    )
    var certificateAuthority: String?

    @Option(
        name: .customLong("etcd-ca"),
        help: "With https:// etcd endpoints: the CA (PEM) that signs etcd's certificate (default: the system's).")
    var etcdCertificateAuthority: String?

    @Option(
        name: .customLong("etcd-cert"),
        help: "With https:// etcd endpoints: a client certificate (PEM) to present to etcd (--client-cert-auth).")
    var etcdCertificate: String?

    @Option(name: .customLong("etcd-key"), help: "The PEM private key of --etcd-cert.")
    var etcdPrivateKey: String?

    /// The TLS settings of the etcd client (used with `https://` endpoints).
    func etcdTLS() throws -> TLSConfiguration? {
        guard etcdCertificateAuthority != nil || etcdCertificate != nil else { return nil }
        let identity = etcdCertificate.map {
            TLSFiles(certificate: $0, privateKey: etcdPrivateKey ?? "", certificateAuthority: etcdCertificateAuthority)
        }
        do {
            return try RPCClientTLS.configuration(certificateAuthority: etcdCertificateAuthority, identity: identity)
        } catch let error as TLSConfigurationError {
            throw CommandError("etcd TLS: \(error.message)")
        }
    }

    func validate() throws {
        guard (etcdCertificate == nil) == (etcdPrivateKey == nil) else {
            throw ValidationError("--etcd-cert and --etcd-key go together; one was given without the other")
        }
        let given = [certificate, privateKey, certificateAuthority].compactMap { $0 }.count
        guard given == 0 || given == 3 else {
            throw ValidationError(
                "TLS needs all three of --tls-cert, --tls-key and --tls-ca (the cluster's CA, which verifies the "
                    + "other processes); \(given == 1 ? "one was" : "two were") given")
        }
    }

    /// The files, when TLS is on.
    var files: TLSFiles? {
        guard let certificate, let privateKey, let certificateAuthority else { return nil }
        return TLSFiles(certificate: certificate, privateKey: privateKey, certificateAuthority: certificateAuthority)
    }

    /// The process's TLS: its port's side and its side as a client of the other processes; `nil` when off.
    func load(clientCertificates: ClientCertificatePolicy, logger: Logger) throws -> ProcessTLS? {
        guard let files else { return nil }
        return try ProcessTLS(files: files, clientCertificates: clientCertificates, logger: logger)
    }
}

/// A process's TLS, both sides: what its port serves, and what it presents to the other processes it calls.
struct ProcessTLS: Sendable {
    /// The port's side.
    let server: RPCServerTLS
    /// The side of its connections to other processes.
    let client: RPCClientTLS

    /// Loads both sides from `files`.
    ///
    /// - Throws: ``CommandError`` naming the file that cannot be read.
    init(files: TLSFiles, clientCertificates: ClientCertificatePolicy, logger: Logger) throws {
        do {
            server = try RPCServerTLS(files: files, clientCertificates: clientCertificates)
            client = try RPCClientTLS(identity: files)
        } catch let error as TLSConfigurationError {
            throw CommandError(error.message)
        }
        logger.info("TLS on", metadata: ["files": "\(files)", "certificate valid until": "\(server.expiry)"])
    }

    /// Reads the files again (on SIGHUP): new connections use them, open ones stay.
    func reload() throws -> Date {
        try client.reload()
        return try server.reload()
    }
}

/// Reloads the process's certificates each time it receives SIGHUP, until graceful shutdown; a file that cannot
/// be read leaves the certificate in use in place, and is logged as an error.
struct CertificateReloader: Service {
    let tls: ProcessTLS
    let logger: Logger

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() {
            do {
                let expiry = try tls.reload()
                logger.notice(
                    "reloaded the TLS certificate (SIGHUP); new connections use it",
                    metadata: ["certificate valid until": "\(expiry)"])
            } catch {
                logger.error(
                    "could not reload the TLS certificate (SIGHUP); the one in use stays",
                    metadata: ["error": "\(error)"])
            }
        }
    }
}
