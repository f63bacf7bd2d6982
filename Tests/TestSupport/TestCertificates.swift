import DurableCertificates
import DurableWire
import Foundation

/// A CA made for one test, and certificates it issued, as PEM files in a temporary folder.
public final class TestCertificates: Sendable {
    /// The folder holding the files; removed when the value goes.
    public let folder: TemporaryDirectory
    /// The CA.
    public let authority: LocalCertificateAuthority
    /// The CA's certificate file.
    public let caFile: String

    /// Makes a CA named `name`.
    public init(_ name: String = "test cluster CA") throws {
        folder = TemporaryDirectory("certs")
        authority = try LocalCertificateAuthority(name: name)
        caFile = folder.path + "/ca.pem"
        try Data(authority.certificatePEM.utf8).write(to: URL(fileURLWithPath: caFile))
    }

    /// Issues a certificate for 127.0.0.1 and localhost (by default) and writes it as `<name>.pem` and
    /// `<name>-key.pem`; returns the files with this CA as the one peers are verified against.
    public func issue(
        _ name: String, ipAddresses: [String] = ["127.0.0.1", "::1"], dnsNames: [String] = ["localhost"],
        validity: TimeInterval = 86_400
    ) throws -> TLSFiles {
        let issued = try authority.issue(
            commonName: name, dnsNames: dnsNames, ipAddresses: ipAddresses, validity: validity)
        let files = TLSFiles(
            certificate: folder.path + "/\(name).pem", privateKey: folder.path + "/\(name)-key.pem",
            certificateAuthority: caFile)
        try Data(issued.certificatePEM.utf8).write(to: URL(fileURLWithPath: files.certificate))
        try Data(issued.privateKeyPEM.utf8).write(to: URL(fileURLWithPath: files.privateKey))
        return files
    }
}
