import AsyncHTTPClient
import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    @Suite("durable dev (a real process)")
    struct DevTests {
        @Test("serves the seed examples over HTTP and RPC, stops cleanly on Ctrl-C, and keeps data across restarts")
        func devServesAndRestarts() async throws {
            let folder = TemporaryDirectory("dev")
            let data = folder.child("data")
            var dev = try await ServerProcess.dev(dataDirectory: data, arguments: ["--nodes", "2"])
            var web = "http://127.0.0.1:\(dev.httpPort!)"
            let stored = try await HTTPTestClient.send(
                web + "/", method: "POST", headers: ["Content-Type": "text/plain"], body: "important data!")
            #expect(stored.text == "127.0.0.1 stored important data!")
            #expect(try await HTTPTestClient.send(web + "/counter/increment").text == "Durable Object 'A' count: 1")
            #expect(try await HTTPTestClient.send(web + "/counter/increment").text == "Durable Object 'A' count: 2")
            // The RPC port takes only the keys `durable dev` made in the data folder, readable by their owner only.
            let apiToken = try RPCKey(
                String(contentsOfFile: data + "/secrets/api-token", encoding: .utf8), role: .client)
            for name in ["cluster-secret", "admin-token", "api-token"] {
                let attributes = try FileManager.default.attributesOfItem(atPath: data + "/secrets/" + name)
                #expect((attributes[.posixPermissions] as? Int) == 0o600, "\(name) must be readable by its owner only")
            }
            let stranger = DurableClient(host: "127.0.0.1", port: dev.port)
            let refused = await #expect(throws: DurableObjectError.self) {
                try await stranger.namespace("COUNTER")
            }
            #expect(
                refused?.message.contains("needs an authenticated connection") == true, "\(String(describing: refused))"
            )
            await stranger.close()
            let client = DurableClient(host: "127.0.0.1", port: dev.port, credentials: apiToken)
            #expect(
                try await client.namespace("COUNTER").getByName("A").fetch("http://counter/decrement").text() == "1")
            await client.close()

            let stopped = await dev.interrupt()
            #expect(stopped == 0)
            #expect(
                dev.child.outputLines.contains { $0.contains("durable dev stopped") }, "\(dev.child.outputLines)")

            dev = try await ServerProcess.dev(dataDirectory: data, arguments: ["--nodes", "2"])
            web = "http://127.0.0.1:\(dev.httpPort!)"
            #expect(try await HTTPTestClient.send(web + "/counter/").text == "Durable Object 'A' count: 1")
            // The same keys after a restart.
            let again = DurableClient(host: "127.0.0.1", port: dev.port, credentials: apiToken)
            #expect(try await again.namespace("COUNTER").getByName("A").fetch("http://counter/").text() == "1")
            await again.close()
            #expect(await dev.interrupt() == 0)
        }
    }
}

extension ProcessTests.DevTests {
    @Test("durable dev --tls makes a local CA, serves HTTPS and RPC over TLS with it, and refuses plaintext")
    func devWithTLS() async throws {
        let folder = TemporaryDirectory("dev-tls")
        let data = folder.child("data")
        let dev = try await ServerProcess.dev(dataDirectory: data, arguments: ["--tls", "--nodes-over-tcp"])
        let caFile = data + "/tls/ca.pem"
        #expect(FileManager.default.fileExists(atPath: caFile))
        let keyAttributes = try FileManager.default.attributesOfItem(atPath: data + "/tls/key.pem")
        #expect((keyAttributes[.posixPermissions] as? Int) == 0o600)
        #expect(dev.child.outputLines.contains { $0.contains("Ready on https://127.0.0.1:") })

        // HTTPS on the worker's port, verified against the local CA.
        let http = HTTPClient(
            eventLoopGroupProvider: .singleton,
            configuration: HTTPClient.Configuration(
                tlsConfiguration: try RPCClientTLS.configuration(certificateAuthority: caFile, identity: nil)))
        let response = try await http.execute(
            HTTPClientRequest(url: "https://127.0.0.1:\(dev.httpPort!)/counter/increment"), timeout: .seconds(30))
        #expect(response.status == .ok)
        let body = try await response.body.collect(upTo: 1 << 20)
        #expect(String(buffer: body) == "Durable Object 'A' count: 1")
        // Plain HTTP on the HTTPS port gets no answer.
        await #expect(throws: (any Error).self) {
            _ = try await http.execute(
                HTTPClientRequest(url: "http://127.0.0.1:\(dev.httpPort!)/counter/"), timeout: .seconds(10))
        }
        try await http.shutdown()

        // RPC over TLS with the API token; the nodes are reached over their TLS ports (--nodes-over-tcp).
        let apiToken = try RPCKey(String(contentsOfFile: data + "/secrets/api-token", encoding: .utf8), role: .client)
        let client = DurableClient(
            host: "127.0.0.1", port: dev.port, credentials: apiToken,
            tls: try RPCClientTLS(certificateAuthority: caFile))
        #expect(try await client.namespace("COUNTER").getByName("A").fetch("http://counter/increment").text() == "2")
        await client.close()
        let plain = DurableClient(host: "127.0.0.1", port: dev.port, credentials: apiToken)
        let refused = await #expect(throws: DurableObjectError.self) { try await plain.namespace("COUNTER") }
        #expect(refused?.message.contains("TLS required") == true, "\(String(describing: refused))")
        await plain.close()
        #expect(await dev.interrupt() == 0)
    }
}
