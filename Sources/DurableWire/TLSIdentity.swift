import Foundation
import NIOSSL
import Synchronization

/// Whether a TLS server asks its clients for certificates.
public enum ClientCertificatePolicy: String, Sendable, Hashable {
    /// Every client must present a certificate signed by the CA (mutual TLS): a node's and a standby's port.
    case required
    /// A client may present one, and if it does it must be signed by the CA: a gateway's port, which serves
    /// applications and operators (who prove tokens) as well as the cluster's own processes.
    case optional
    /// Clients are not asked for certificates.
    case none
}

/// A certificate that cannot be loaded or used, naming the file and the problem.
public struct TLSConfigurationError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// The PEM files of a TLS identity: a certificate chain, its private key, and the CA that peers are verified
/// against.
public struct TLSFiles: Sendable, Hashable, CustomStringConvertible {
    /// The certificate chain, PEM (the leaf first).
    public var certificate: String
    /// The private key of the leaf certificate, PEM.
    public var privateKey: String
    /// The CA certificates peers are verified against, PEM; `nil` for the system's trust store.
    public var certificateAuthority: String?

    /// Names the files.
    public init(certificate: String, privateKey: String, certificateAuthority: String?) {
        self.certificate = certificate
        self.privateKey = privateKey
        self.certificateAuthority = certificateAuthority
    }

    /// The file names, for logs.
    public var description: String {
        "certificate \(certificate), key \(privateKey)" + (certificateAuthority.map { ", CA \($0)" } ?? "")
    }

    /// Reads the certificate chain.
    func loadChain() throws -> [NIOSSLCertificate] {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificate)
        } catch {
            throw TLSConfigurationError(
                "Cannot read the TLS certificate \(certificate): \(Self.reason(error, file: certificate)).")
        }
        guard !chain.isEmpty else {
            throw TLSConfigurationError("The TLS certificate file \(certificate) holds no PEM certificate.")
        }
        return chain
    }

    /// Reads the private key.
    func loadKey() throws -> NIOSSLPrivateKey {
        do {
            return try NIOSSLPrivateKey(file: privateKey, format: .pem)
        } catch {
            throw TLSConfigurationError(
                "Cannot read the TLS private key \(privateKey): \(Self.reason(error, file: privateKey)).")
        }
    }

    /// Reads the CA certificates, when a file is named.
    func loadTrustRoots() throws -> NIOSSLTrustRoots { try Self.loadTrustRoots(certificateAuthority) }

    /// Reads the CA certificates of `certificateAuthority`; the system's trust store when `nil`.
    static func loadTrustRoots(_ certificateAuthority: String?) throws -> NIOSSLTrustRoots {
        guard let certificateAuthority else { return .default }
        do {
            let roots = try NIOSSLCertificate.fromPEMFile(certificateAuthority)
            guard !roots.isEmpty else {
                throw TLSConfigurationError(
                    "The TLS CA file \(certificateAuthority) holds no PEM certificate.")
            }
            return .certificates(roots)
        } catch let error as TLSConfigurationError {
            throw error
        } catch {
            throw TLSConfigurationError(
                "Cannot read the TLS CA \(certificateAuthority): \(Self.reason(error, file: certificateAuthority)).")
        }
    }

    static func reason(_ error: any Error, file: String) -> String {
        FileManager.default.isReadableFile(atPath: file)
            ? "it is not valid PEM (\(error))" : "the file does not exist or cannot be read"
    }

    /// When the leaf certificate stops being valid.
    func expiry(of chain: [NIOSSLCertificate]) -> Date {
        Date(timeIntervalSince1970: TimeInterval(chain[0].notValidAfter))
    }
}

/// The TLS side of an ``RPCServer``: the server's certificate and key, and the CA its clients' certificates are
/// verified against.
///
/// ``reload()`` reads the files again (on SIGHUP, say): connections accepted afterwards use the new certificate;
/// open connections keep theirs and are not dropped.
public final class RPCServerTLS: Sendable {
    /// The files it reads.
    public let files: TLSFiles
    /// Whether clients must present certificates.
    public let clientCertificates: ClientCertificatePolicy
    private let current: Mutex<Loaded>

    private struct Loaded {
        var context: NIOSSLContext
        var expiry: Date
        var chain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
    }

    /// Loads the certificate, the key and the CA.
    ///
    /// - Throws: ``TLSConfigurationError`` naming the file that cannot be read, or the key that does not match.
    public init(files: TLSFiles, clientCertificates: ClientCertificatePolicy) throws {
        guard clientCertificates == .none || files.certificateAuthority != nil else {
            throw TLSConfigurationError(
                "Verifying client certificates needs the CA that signs them (--tls-ca).")
        }
        self.files = files
        self.clientCertificates = clientCertificates
        current = Mutex(try Self.load(files, clientCertificates))
    }

    /// The context new connections use.
    public var context: NIOSSLContext { current.withLock { $0.context } }

    /// When the certificate in use stops being valid.
    public var expiry: Date { current.withLock { $0.expiry } }

    /// Reads the files again; new connections use them. On an error the certificate in use stays.
    ///
    /// - Returns: when the new certificate stops being valid.
    @discardableResult
    public func reload() throws -> Date {
        let loaded = try Self.load(files, clientCertificates)
        current.withLock { $0 = loaded }
        return loaded.expiry
    }

    /// A swift-nio-ssl configuration serving the same certificate to HTTPS clients (browsers: no client
    /// certificates asked), that follows ``reload()``: each handshake takes the certificate loaded last.
    public func httpsConfiguration() -> TLSConfiguration {
        let (chain, key) = current.withLock { ($0.chain, $0.key) }
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.sslContextCallback = { [weak self] _, promise in
            guard let (chain, key) = self?.current.withLock({ ($0.chain, $0.key) }) else {
                promise.succeed(.noChanges)
                return
            }
            var override = NIOSSLContextConfigurationOverride()
            override.certificateChain = chain.map { .certificate($0) }
            override.privateKey = .privateKey(key)
            promise.succeed(override)
        }
        return configuration
    }

    private static func load(_ files: TLSFiles, _ policy: ClientCertificatePolicy) throws -> Loaded {
        let chain = try files.loadChain()
        let key = try files.loadKey()
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        switch policy {
        case .required:
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = try files.loadTrustRoots()
        case .optional:
            configuration.certificateVerification = .optionalVerification
            configuration.trustRoots = try files.loadTrustRoots()
        case .none:
            configuration.certificateVerification = .none
        }
        do {
            return Loaded(
                context: try NIOSSLContext(configuration: configuration), expiry: files.expiry(of: chain),
                chain: chain, key: key)
        } catch {
            throw TLSConfigurationError(
                "Cannot use the TLS certificate \(files.certificate) with the key \(files.privateKey): \(error) "
                    + "(does the key belong to the certificate?).")
        }
    }
}

/// The TLS side of an ``RPCConnection``: the CA the server's certificate is verified against (chain and host name
/// or IP address), and optionally a client certificate to present (mutual TLS between the cluster's processes).
///
/// ``reload()`` reads the files again; connections opened afterwards use them.
public final class RPCClientTLS: Sendable {
    /// The CA file; `nil` for the system's trust store.
    public let certificateAuthority: String?
    /// The client certificate and key presented to servers, if any.
    public let identity: TLSFiles?
    private let current: Mutex<NIOSSLContext>

    /// Trusts the CA in `certificateAuthority` (the system's trust store when `nil`) and presents `identity`'s
    /// certificate when given.
    ///
    /// - Throws: ``TLSConfigurationError`` naming the file that cannot be read.
    public init(certificateAuthority: String?, identity: TLSFiles? = nil) throws {
        self.certificateAuthority = certificateAuthority
        self.identity = identity
        current = Mutex(try Self.load(certificateAuthority, identity))
    }

    /// Trusts the CA of `files` and presents its certificate: how the cluster's processes connect to each other.
    public convenience init(identity files: TLSFiles) throws {
        try self.init(certificateAuthority: files.certificateAuthority, identity: files)
    }

    /// The context new connections use.
    public var context: NIOSSLContext { current.withLock { $0 } }

    /// Reads the files again; new connections use them. On an error the files in use stay.
    public func reload() throws {
        let loaded = try Self.load(certificateAuthority, identity)
        current.withLock { $0 = loaded }
    }

    private static func load(_ certificateAuthority: String?, _ identity: TLSFiles?) throws -> NIOSSLContext {
        let configuration = try Self.configuration(certificateAuthority: certificateAuthority, identity: identity)
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TLSConfigurationError(
                "Cannot use the TLS client settings (\(identity?.description ?? certificateAuthority ?? "system CAs")): "
                    + "\(error).")
        }
    }

    /// A swift-nio-ssl client configuration that verifies servers (chain and host name) against the CA in
    /// `certificateAuthority` (the system's trust store when `nil`) and presents `identity`'s certificate when
    /// given; for clients other than ``RPCConnection`` (the etcd client's HTTPS).
    ///
    /// - Throws: ``TLSConfigurationError`` naming the file that cannot be read.
    public static func configuration(certificateAuthority: String?, identity: TLSFiles?) throws -> TLSConfiguration {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = .fullVerification
        configuration.trustRoots =
            try TLSFiles.loadTrustRoots(certificateAuthority)
        if let identity {
            configuration.certificateChain = try identity.loadChain().map { .certificate($0) }
            configuration.privateKey = .privateKey(try identity.loadKey())
        }
        return configuration
    }
}

/// Tells host names from IP addresses (TLS sends only host names as the server name; an IP address is checked
/// against the certificate's IP addresses instead).
enum HostAddress {
    /// Whether `host` is an IPv4 or IPv6 address.
    static func isIPAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }
}
