import Crypto
import Foundation
import SwiftASN1
import X509

/// A small certificate authority for trying TLS and for tests: it makes a CA certificate and issues certificates
/// signed by it, all with P-256 keys, written as PEM files.
///
/// `durable dev --tls` uses one to make a CA and a certificate for `localhost`, `127.0.0.1` and `::1`. A production
/// cluster uses its own PKI instead; the processes only need PEM files (see the Operations article).
public struct LocalCertificateAuthority: Sendable {
    /// The CA's certificate, PEM.
    public let certificatePEM: String
    /// The CA's private key, PEM.
    public let privateKeyPEM: String
    private let certificate: Certificate

    /// Makes a new CA, valid from an hour ago for `validity`.
    ///
    /// - Parameter name: the CA's common name.
    public init(name: String, validity: TimeInterval = 10 * 365 * 86_400) throws {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName { CommonName(name) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now - 3_600, notValidAfter: now + validity,
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: Certificate.PublicKey(key.publicKey))
            },
            issuerPrivateKey: Certificate.PrivateKey(key))
        self.certificate = certificate
        certificatePEM = try certificate.serializeAsPEM().pemString
        privateKeyPEM = key.pemRepresentation
    }

    /// Loads a CA from its certificate and key (PEM), to issue more certificates.
    public init(certificatePEM: String, privateKeyPEM: String) throws {
        certificate = try Certificate(pemEncoded: certificatePEM)
        _ = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
    }

    /// A certificate and its key, as PEM.
    public struct Issued: Sendable {
        /// The certificate, PEM.
        public let certificatePEM: String
        /// Its private key, PEM.
        public let privateKeyPEM: String
    }

    /// Issues a certificate for servers and clients alike (extended key usage serverAuth and clientAuth), valid for
    /// the given DNS names and IP addresses.
    ///
    /// - Parameters:
    ///   - commonName: the subject's common name (a node id, say).
    ///   - dnsNames: host names the certificate is valid for.
    ///   - ipAddresses: IPv4 or IPv6 addresses, as text, the certificate is valid for.
    ///   - validity: how long from now it stays valid.
    /// - Throws: ``CertificateAuthorityError`` for an address that does not parse.
    public func issue(
        commonName: String, dnsNames: [String] = [], ipAddresses: [String] = [],
        validity: TimeInterval = 365 * 86_400
    ) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let issuerKey = try P256.Signing.PrivateKey(pemRepresentation: privateKeyPEM)
        var names: [GeneralName] = dnsNames.map { .dnsName($0) }
        for address in ipAddresses {
            guard let bytes = Self.addressBytes(address) else {
                throw CertificateAuthorityError("\(address) is not an IPv4 or IPv6 address.")
            }
            names.append(.ipAddress(ASN1OctetString(contentBytes: ArraySlice(bytes))))
        }
        let now = Date()
        let issued = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now - 3_600, notValidAfter: now + validity,
            issuer: certificate.subject, subject: try DistinguishedName { CommonName(commonName) },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: Certificate.PrivateKey(issuerKey))
        return Issued(certificatePEM: try issued.serializeAsPEM().pemString, privateKeyPEM: key.pemRepresentation)
    }

    /// Whether `text` is an IPv4 or IPv6 address.
    public static func isIPAddress(_ text: String) -> Bool { addressBytes(text) != nil }

    /// The bytes of an IPv4 or IPv6 address written as text; `nil` when it is neither.
    static func addressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}

/// A certificate that cannot be made.
public struct CertificateAuthorityError: Error, Sendable, CustomStringConvertible {
    /// What is wrong.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

/// The files of one process's TLS identity, as `durable dev --tls` and the tests write them: `ca.pem`, `cert.pem`
/// and `key.pem` in one folder.
public struct CertificateFolder: Sendable {
    /// The CA certificate (PEM): what peers are verified against.
    public let certificateAuthority: String
    /// The certificate (PEM).
    public let certificate: String
    /// Its private key (PEM), readable by the owner only.
    public let privateKey: String

    /// The paths of the files under `folder`.
    public init(folder: String) {
        certificateAuthority = (folder as NSString).appendingPathComponent("ca.pem")
        certificate = (folder as NSString).appendingPathComponent("cert.pem")
        privateKey = (folder as NSString).appendingPathComponent("key.pem")
    }

    /// Whether all three files exist.
    public var exists: Bool {
        [certificateAuthority, certificate, privateKey].allSatisfy { FileManager.default.fileExists(atPath: $0) }
    }

    /// Writes the CA's certificate and `issued` into the folder (made when missing); the key file gets mode 0600.
    public func write(authority: LocalCertificateAuthority, issued: LocalCertificateAuthority.Issued) throws {
        let folder = (certificate as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Data(authority.certificatePEM.utf8).write(to: URL(fileURLWithPath: certificateAuthority))
        try Data(issued.certificatePEM.utf8).write(to: URL(fileURLWithPath: certificate))
        try? FileManager.default.removeItem(atPath: privateKey)
        guard
            FileManager.default.createFile(
                atPath: privateKey, contents: Data(issued.privateKeyPEM.utf8), attributes: [.posixPermissions: 0o600])
        else { throw CertificateAuthorityError("Cannot write \(privateKey).") }
    }
}
