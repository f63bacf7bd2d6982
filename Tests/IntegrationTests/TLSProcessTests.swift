import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    @Suite("TLS between real processes")
    struct TLSProcessTests {
        /// The TLS flags of one process.
        private func flags(_ files: TLSFiles) -> [String] {
            ["--tls-cert", files.certificate, "--tls-key", files.privateKey, "--tls-ca", files.certificateAuthority!]
        }

        @Test(
            "gateway and node speak mutual TLS; each RPC port refuses plaintext and a foreign certificate, saying why"
        )
        func mutualTLS() async throws {
            let folder = TemporaryDirectory("tls-cluster")
            let cluster = try TestCertificates("cluster CA")
            let foreign = try TestCertificates("another CA")
            let gatewayFiles = try cluster.issue("gateway")
            let nodeFiles = try cluster.issue("node1")
            let gateway = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"), arguments: flags(gatewayFiles))
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("node"),
                arguments: ["--gateway", "127.0.0.1:\(gateway.port)"] + flags(nodeFiles))

            // A client trusting the cluster's CA reaches the objects: the gateway forwards to the node over
            // mutual TLS.
            let client = DurableClient(
                host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api,
                tls: try RPCClientTLS(certificateAuthority: cluster.caFile))
            #expect(
                try await client.namespace("COUNTER").getByName("a").fetch("http://counter/increment").text() == "1")

            // Plaintext, on either port: refused with the reason, on both sides.
            for (port, process) in [(gateway.port, gateway), (node.port, node)] {
                let plain = DurableClient(host: "127.0.0.1", port: port, credentials: TestKeys.cluster)
                let error = await #expect(throws: DurableObjectError.self) { try await plain.namespace("COUNTER") }
                #expect(error?.message.contains("TLS required") == true, "\(String(describing: error))")
                await plain.close()
                #expect(
                    await eventually {
                        process.child.errorText.contains("refused a connection: the peer spoke plaintext on a TLS port")
                    }, "\(process.child.errorText)")
            }

            // A certificate from another CA, even with the cluster secret: the node refuses it.
            let intruder = try foreign.issue("intruder")
            let refused = await #expect(throws: RPCError.self) {
                let connection = try await RPCConnection.connect(
                    host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster,
                    tls: try RPCClientTLS(certificateAuthority: cluster.caFile, identity: intruder))
                await connection.close()
            }
            #expect(refused?.code == .unavailable)
            #expect(
                await eventually {
                    node.child.errorText.contains("not signed by the CA this server trusts")
                }, "\(node.child.errorText)")
            // And a client without a certificate: the node asks for one.
            let anonymous = await #expect(throws: RPCError.self) {
                let connection = try await RPCConnection.connect(
                    host: "127.0.0.1", port: node.port, credentials: TestKeys.cluster,
                    tls: try RPCClientTLS(certificateAuthority: cluster.caFile))
                await connection.close()
            }
            #expect(anonymous != nil)
            #expect(
                await eventually {
                    node.child.errorText.contains("the client presented no certificate")
                }, "\(node.child.errorText)")
            // A gateway impostor's certificate on the client side: this client refuses the server.
            let impostor = DurableClient(
                host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api,
                tls: try RPCClientTLS(certificateAuthority: foreign.caFile))
            let untrusted = await #expect(throws: DurableObjectError.self) { try await impostor.namespace("COUNTER") }
            #expect(
                untrusted?.message.contains("the server's certificate is not signed by a CA this client trusts")
                    == true, "\(String(describing: untrusted))")
            await impostor.close()

            // Everything still serves.
            #expect(
                try await client.namespace("COUNTER").getByName("a").fetch("http://counter/increment").text() == "2")
            await client.close()
            #expect(await node.stop() == 0)
            #expect(await gateway.stop() == 0)
        }

        @Test("SIGHUP reloads the certificate: new connections get it, open ones stay; a broken file keeps the old")
        func reloadOnSIGHUP() async throws {
            let folder = TemporaryDirectory("tls-reload")
            let cluster = try TestCertificates("cluster CA")
            let first = try cluster.issue("gateway", validity: 86_400)
            let gateway = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"), arguments: flags(first) + ["--log-level", "notice"])
            // A connection opened before the rotation (it proves its key again below: a round trip on it).
            let open = try await RPCConnection.connect(
                host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api,
                tls: try RPCClientTLS(certificateAuthority: cluster.caFile))

            // A new certificate, valid for longer, written over the same files.
            let second = try cluster.issue("gateway-next", validity: 3 * 86_400)
            try Data(contentsOf: URL(fileURLWithPath: second.certificate)).write(
                to: URL(fileURLWithPath: first.certificate))
            try Data(contentsOf: URL(fileURLWithPath: second.privateKey)).write(
                to: URL(fileURLWithPath: first.privateKey))
            gateway.child.send(SIGHUP)
            let reloaded = try await gateway.child.waitForLine(on: .errors, timeout: .seconds(60)) { line in
                line.contains("reloaded the TLS certificate") ? line : nil
            }
            // It names the new certificate's expiry: three days from now (the day, in UTC), not one.
            let day = { (date: Date) in String(ISO8601DateFormatter().string(from: date).prefix(10)) }
            let expected = Date().addingTimeInterval(3 * 86_400)
            #expect(
                reloaded.contains(day(expected)) || reloaded.contains(day(expected - 120)), "\(reloaded)")
            // The open connection is still up; new ones get the new certificate.
            #expect(open.isUsable)
            #expect(try await open.authenticate(with: TestKeys.api) == "client")
            let fresh = try await RPCConnection.connect(
                host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api,
                tls: try RPCClientTLS(certificateAuthority: cluster.caFile))
            await fresh.close()

            // A broken file: the reload fails, is logged, and the gateway keeps serving with what it had.
            try Data("garbage".utf8).write(to: URL(fileURLWithPath: first.certificate))
            gateway.child.send(SIGHUP)
            let failed = try await gateway.child.waitForLine(on: .errors, timeout: .seconds(60)) { line in
                line.contains("could not reload the TLS certificate") ? line : nil
            }
            #expect(failed.contains(first.certificate), "\(failed)")
            let still = try await RPCConnection.connect(
                host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api,
                tls: try RPCClientTLS(certificateAuthority: cluster.caFile))
            await still.close()
            #expect(try await open.authenticate(with: TestKeys.api) == "client")
            await open.close()
            #expect(await gateway.stop() == 0)
        }

        @Test("a half-given TLS configuration or an unreadable certificate stops the process with a clear error")
        func badConfiguration() async throws {
            let folder = TemporaryDirectory("tls-bad")
            let environment = TestKeys.environment(included: true)
            let partial = try await runDurable(
                ["node", "--port", "0", "--data", folder.child("node"), "--tls-cert", "/nowhere/cert.pem"],
                environment: environment)
            #expect(partial.status != 0)
            #expect(partial.errors.contains("TLS needs all three of --tls-cert, --tls-key and --tls-ca"), "\(partial)")
            let missing = try await runDurable(
                [
                    "node", "--port", "0", "--data", folder.child("node"), "--tls-cert", "/nowhere/cert.pem",
                    "--tls-key", "/nowhere/key.pem", "--tls-ca", "/nowhere/ca.pem",
                ], environment: environment)
            #expect(missing.status != 0)
            #expect(missing.errors.contains("Cannot read the TLS certificate /nowhere/cert.pem"), "\(missing)")
        }
    }
}
