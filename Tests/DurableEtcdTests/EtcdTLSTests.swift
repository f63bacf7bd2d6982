import DurableEtcd
import DurableWire
import Foundation
import TestSupport
import Testing

@Suite("etcd client over https (a real etcd member with client-cert-auth)")
struct EtcdTLSTests {
    @Test("with the CA and a client certificate the client works; without the certificate etcd refuses it")
    func https() async throws {
        let folder = TemporaryDirectory("etcd-tls")
        let certificates = try TestCertificates("etcd CA")
        let serverFiles = try certificates.issue("etcd")
        let clientFiles = try certificates.issue("gateway")
        let member = try await EtcdProcess.start(dataDirectory: folder.child("member"), tls: serverFiles)
        #expect(member.clientURL.hasPrefix("https://"))
        let client = try EtcdClient(
            endpoints: [member.clientURL], requestTimeout: .seconds(30),
            tls: try RPCClientTLS.configuration(certificateAuthority: certificates.caFile, identity: clientFiles))
        try await client.put(Array("tls/key".utf8), Array("value".utf8))
        #expect(try await client.get(Array("tls/key".utf8))?.value == Array("value".utf8))
        await client.close()

        let anonymous = try EtcdClient(
            endpoints: [member.clientURL], requestTimeout: .seconds(5),
            tls: try RPCClientTLS.configuration(certificateAuthority: certificates.caFile, identity: nil))
        await #expect(throws: (any Error).self) { _ = try await anonymous.get(Array("tls/key".utf8)) }
        await anonymous.close()
        try await member.stop()
    }
}
