import DurableWire
import Foundation
import Logging
import TestSupport
import Testing

@Suite("RPC over TLS")
struct TLSTests {
    /// Runs `body` with a TLS server that verifies client certificates by `policy`, serving a fresh ``TestHandler``.
    private func withTLSServer<T>(
        _ files: TLSFiles, policy: ClientCertificatePolicy, access: RPCAccessControl? = nil,
        logger: Logger = Logger(label: "test"), _ body: (RPCServer, Int) async throws -> T
    ) async throws -> T {
        let tls = try RPCServerTLS(files: files, clientCertificates: policy)
        let server = RPCServer(
            host: "127.0.0.1", port: 0, handler: TestHandler(), access: access, tls: tls, logger: logger)
        let port = try await server.start()
        do {
            let value = try await body(server, port)
            await server.shutdown(gracePeriod: .seconds(1))
            return value
        } catch {
            await server.shutdown(gracePeriod: .seconds(1))
            throw error
        }
    }

    @Test("a client that trusts the CA calls a TLS server; with mutual TLS it presents its own certificate")
    func handshake() async throws {
        let certificates = try TestCertificates()
        let serverFiles = try certificates.issue("node-a")
        let clientFiles = try certificates.issue("gateway-1")
        try await withTLSServer(serverFiles, policy: .required) { _, port in
            let connection = try await RPCConnection.connect(
                host: "127.0.0.1", port: port, tls: try RPCClientTLS(identity: clientFiles))
            #expect(try await connection.call("test/echo", payload: [1, 2, 3]) == [1, 2, 3])
            // Multiplexed calls and large payloads go through the TLS layer like any other.
            let big = [UInt8](repeating: 7, count: 1 << 20)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        let echoed = try await connection.call("test/echo", payload: big)
                        #expect(echoed == big)
                    }
                }
                try await group.waitForAll()
            }
            await connection.close()
            // localhost matches the certificate's DNS name.
            let byName = try await RPCConnection.connect(
                host: "localhost", port: port, tls: try RPCClientTLS(identity: clientFiles))
            #expect(try await byName.call("test/echo", payload: [4]) == [4])
            await byName.close()
        }
    }

    @Test("a TLS port refuses a plaintext peer: the client reads why, the server logs it, and keeps serving")
    func plaintextRefused() async throws {
        let certificates = try TestCertificates()
        let serverFiles = try certificates.issue("node-a")
        let logs = LogCapture()
        try await withTLSServer(serverFiles, policy: .optional, logger: logs.logger("tls")) { _, port in
            let plain = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let error = await #expect(throws: RPCError.self) { try await plain.call("test/echo", payload: [1]) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("TLS required") == true, "\(error!)")
            #expect(error?.message.contains("spoke plaintext") == true, "\(error!)")
            #expect(
                await eventually {
                    logs.contains("refused a connection: the peer spoke plaintext on a TLS port")
                }, "the server logs the refusal")
            // With a key to prove, the refusal comes out of connect itself.
            let refused = await #expect(throws: RPCError.self) {
                try await RPCConnection.connect(host: "127.0.0.1", port: port, credentials: AuthKeys.client)
            }
            #expect(refused?.message.contains("TLS required") == true, "\(refused!)")
            let good = try await RPCConnection.connect(
                host: "127.0.0.1", port: port,
                tls: try RPCClientTLS(certificateAuthority: serverFiles.certificateAuthority))
            #expect(try await good.call("test/echo", payload: [2]) == [2])
            await good.close()
        }
    }

    @Test("a TLS client on a plaintext port is told the server does not answer in TLS; the server logs it")
    func tlsClientOnPlaintextPort() async throws {
        let certificates = try TestCertificates()
        let clientFiles = try certificates.issue("gateway-1")
        let logs = LogCapture()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: TestHandler(), logger: logs.logger("plain"))
        let port = try await server.start()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let error = await #expect(throws: RPCError.self) {
            try await RPCConnection.connect(host: "127.0.0.1", port: port, tls: try RPCClientTLS(identity: clientFiles))
        }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains("TLS handshake with 127.0.0.1:\(port) failed") == true, "\(error!)")
        #expect(error?.message.contains("plaintext") == true, "\(error!)")
        #expect(
            await eventually {
                logs.contains("the peer started a TLS handshake on a plaintext port")
            }, "the server logs the refusal")
    }

    @Test("mutual TLS refuses a client whose certificate comes from another CA")
    func foreignClientCertificateRefused() async throws {
        let cluster = try TestCertificates("cluster CA")
        let foreign = try TestCertificates("some other CA")
        let serverFiles = try cluster.issue("node-a")
        let intruder = try foreign.issue("intruder")
        let logs = LogCapture()
        try await withTLSServer(serverFiles, policy: .required, logger: logs.logger("mtls")) { _, port in
            // The intruder trusts the cluster's CA (so it accepts the server) but holds a foreign certificate.
            let tls = try RPCClientTLS(certificateAuthority: cluster.caFile, identity: intruder)
            let error = await #expect(throws: RPCError.self) {
                let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port, tls: tls)
                // TLS 1.3 lets a client finish before the server checked its certificate: the refusal may come
                // with the first call.
                _ = try await connection.call("test/echo", payload: [1])
            }
            #expect(error?.code == .unavailable)
            #expect(
                await eventually {
                    logs.contains("refused a connection: TLS handshake failed")
                        && logs.contains("not signed by the CA this server trusts")
                }, "the server logs why")
        }
    }

    @Test("mutual TLS refuses a client without a certificate")
    func missingClientCertificateRefused() async throws {
        let cluster = try TestCertificates("cluster CA")
        let serverFiles = try cluster.issue("node-a")
        let logs = LogCapture()
        try await withTLSServer(serverFiles, policy: .required, logger: logs.logger("mtls")) { _, port in
            let anonymous = await #expect(throws: RPCError.self) {
                let connection = try await RPCConnection.connect(
                    host: "127.0.0.1", port: port, tls: try RPCClientTLS(certificateAuthority: cluster.caFile))
                defer { Task { await connection.close() } }
                _ = try await connection.call("test/echo", payload: [1])
            }
            #expect(anonymous?.code == .unavailable)
            #expect(
                await eventually {
                    logs.contains("the client presented no certificate")
                }, "the server logs a missing certificate")
        }
    }

    @Test("a client refuses a server whose certificate comes from another CA, or names another host")
    func foreignServerCertificateRefused() async throws {
        let cluster = try TestCertificates("cluster CA")
        let foreign = try TestCertificates("some other CA")
        let impostor = try foreign.issue("impostor")
        try await withTLSServer(impostor, policy: .none) { _, port in
            let error = await #expect(throws: RPCError.self) {
                try await RPCConnection.connect(
                    host: "127.0.0.1", port: port, tls: try RPCClientTLS(certificateAuthority: cluster.caFile))
            }
            #expect(error?.code == .unavailable)
            #expect(
                error?.message.contains("the server's certificate is not signed by a CA this client trusts") == true,
                "\(error!)")
        }
        let elsewhere = try cluster.issue("elsewhere", ipAddresses: ["10.9.9.9"], dnsNames: ["elsewhere.example"])
        try await withTLSServer(elsewhere, policy: .none) { _, port in
            let error = await #expect(throws: RPCError.self) {
                try await RPCConnection.connect(
                    host: "127.0.0.1", port: port, tls: try RPCClientTLS(certificateAuthority: cluster.caFile))
            }
            #expect(error?.message.contains("not valid for 127.0.0.1:\(port)") == true, "\(error!)")
        }
    }

    @Test("reload: new connections get the new certificate; open connections stay up")
    func reload() async throws {
        let old = try TestCertificates("old CA")
        let new = try TestCertificates("new CA")
        let issuedByOld = try old.issue("node-a")
        let clientFiles = try old.issue("gateway-1")
        // The server's own files, which the rotation overwrites.
        let folder = TemporaryDirectory("server-tls")
        let serverFiles = TLSFiles(
            certificate: folder.path + "/cert.pem", privateKey: folder.path + "/key.pem",
            certificateAuthority: folder.path + "/ca.pem")
        func install(_ files: TLSFiles) throws {
            for (from, to) in [
                (files.certificate, serverFiles.certificate), (files.privateKey, serverFiles.privateKey),
                (files.certificateAuthority!, serverFiles.certificateAuthority!),
            ] {
                try Data(contentsOf: URL(fileURLWithPath: from)).write(to: URL(fileURLWithPath: to))
            }
        }
        try install(issuedByOld)
        let tls = try RPCServerTLS(files: serverFiles, clientCertificates: .optional)
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: TestHandler(), tls: tls)
        let port = try await server.start()
        defer { Task { await server.shutdown(gracePeriod: .seconds(1)) } }
        let open = try await RPCConnection.connect(
            host: "127.0.0.1", port: port, tls: try RPCClientTLS(identity: clientFiles))
        #expect(try await open.call("test/echo", payload: [1]) == [1])
        // Rotate to a certificate from a new CA, written over the same files.
        try install(try new.issue("node-a", validity: 2 * 86_400))
        let before = tls.expiry
        try tls.reload()
        #expect(tls.expiry > before)
        // A client trusting only the old CA no longer accepts the server; one trusting the new CA does.
        let stale = await #expect(throws: RPCError.self) {
            try await RPCConnection.connect(
                host: "127.0.0.1", port: port, tls: try RPCClientTLS(certificateAuthority: old.caFile))
        }
        #expect(stale?.message.contains("not signed by a CA this client trusts") == true, "\(stale!)")
        let fresh = try await RPCConnection.connect(
            host: "127.0.0.1", port: port, tls: try RPCClientTLS(certificateAuthority: new.caFile))
        #expect(try await fresh.call("test/echo", payload: [2]) == [2])
        // The connection opened before the reload was not dropped.
        #expect(open.isUsable)
        #expect(try await open.call("test/echo", payload: [3]) == [3])
        await open.close()
        await fresh.close()
    }

    @Test("a broken certificate file fails reload with its name, and the certificate in use stays")
    func brokenReload() async throws {
        let certificates = try TestCertificates()
        let serverFiles = try certificates.issue("node-a")
        let tls = try RPCServerTLS(files: serverFiles, clientCertificates: .required)
        try Data("not a certificate".utf8).write(to: URL(fileURLWithPath: serverFiles.certificate))
        let error = #expect(throws: TLSConfigurationError.self) { try tls.reload() }
        #expect(error?.message.contains(serverFiles.certificate) == true, "\(error!)")
        #expect(error?.message.contains("not valid PEM") == true, "\(error!)")
        let missing = #expect(throws: TLSConfigurationError.self) {
            try RPCServerTLS(
                files: TLSFiles(
                    certificate: "/nonexistent/cert.pem", privateKey: serverFiles.privateKey,
                    certificateAuthority: nil), clientCertificates: .none)
        }
        #expect(missing?.message.contains("/nonexistent/cert.pem") == true)
        #expect(missing?.message.contains("does not exist") == true)
        let first = try certificates.issue("first")
        let second = try certificates.issue("second")
        let wrongKey = #expect(throws: TLSConfigurationError.self) {
            try RPCServerTLS(
                files: TLSFiles(
                    certificate: first.certificate, privateKey: second.privateKey, certificateAuthority: nil),
                clientCertificates: .none)
        }
        #expect(wrongKey?.message.contains("does the key belong to the certificate?") == true, "\(wrongKey!)")
    }
}
