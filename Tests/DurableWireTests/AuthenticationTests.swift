import DurableWire
import Foundation
import TestSupport
import Testing

@Suite("RPC authentication")
struct AuthenticationTests {
    @Test("a connection that has not authenticated is refused UNAUTHENTICATED before its call runs")
    func unauthenticated() async throws {
        try await withSecuredServer { port, handler in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let error = await #expect(throws: RPCError.self) { try await connection.call("test/echo", payload: [1]) }
            #expect(error?.code == .unauthenticated)
            #expect(error?.message.contains("test/echo needs an authenticated connection") == true, "\(error!)")
            #expect(handler.started.load(ordering: .relaxed) == 0, "the call never ran")
            // Authenticating afterwards on the same connection works.
            #expect(try await connection.authenticate(with: AuthKeys.client) == "client")
            #expect(try await connection.call("test/echo", payload: [1]) == [1])
            await connection.close()
        }
    }

    @Test("each key gets its role, and a role calls only its methods (PERMISSION_DENIED names what is needed)")
    func roles() async throws {
        try await withSecuredServer { port, handler in
            let client = try await RPCConnection.connect(host: "127.0.0.1", port: port, credentials: AuthKeys.client)
            #expect(try await client.call("test/echo", payload: [7]) == [7])
            let denied = await #expect(throws: RPCError.self) { try await client.call("test/metadata", payload: []) }
            #expect(denied?.code == .permissionDenied)
            #expect(
                denied?.message
                    == "test/metadata needs the cluster secret or admin token; this connection proved the API token.")
            let admin = try await RPCConnection.connect(host: "127.0.0.1", port: port, credentials: AuthKeys.admin)
            #expect(try await admin.call("test/metadata", payload: [], metadata: ["x-test": "ok"]) == Array("ok".utf8))
            let internalError = await #expect(throws: RPCError.self) {
                try await admin.call("test/internal", payload: [])
            }
            #expect(internalError?.code == .permissionDenied)
            let cluster = try await RPCConnection.connect(host: "127.0.0.1", port: port, credentials: AuthKeys.cluster)
            let unknown = await #expect(throws: RPCError.self) { try await cluster.call("test/internal", payload: []) }
            #expect(unknown?.code == .unimplemented, "the cluster secret passes; the handler has no such method")
            #expect(handler.started.load(ordering: .relaxed) == 3, "refused calls never reached the handler")
            for connection in [client, admin, cluster] { await connection.close() }
        }
    }

    @Test("a wrong key is refused with UNAUTHENTICATED naming the key's kind, and its connection is closed")
    func wrongKey() async throws {
        try await withSecuredServer { port, _ in
            let wrong = try RPCKey("not-the-cluster-secret-at-all", role: .cluster)
            let error = await #expect(throws: RPCError.self) {
                try await RPCConnection.connect(host: "127.0.0.1", port: port, credentials: wrong)
            }
            #expect(error?.code == .unauthenticated)
            #expect(error?.message.contains("refused our cluster secret") == true, "\(error!)")
            #expect(error?.message.contains("matches no key") == true, "\(error!)")
            // The server keeps serving others.
            let good = try await RPCConnection.connect(host: "127.0.0.1", port: port, credentials: AuthKeys.cluster)
            #expect(try await good.call("test/echo", payload: [9]) == [9])
            await good.close()
        }
    }

    @Test("a proof without a challenge, or replaying a used nonce, is refused")
    func replay() async throws {
        try await withSecuredServer { port, _ in
            let connection = try await RPCConnection.connect(host: "127.0.0.1", port: port)
            let noChallenge = await #expect(throws: RPCError.self) {
                let request = Durable_V1_AuthenticateRequest.with { $0.proof = Data(repeating: 0, count: 32) }
                let bytes: [UInt8] = try request.serializedBytes()
                return try await connection.call(AuthMethods.authenticate, payload: bytes)
            }
            #expect(noChallenge?.code == .failedPrecondition)
            // Prove once, then replay the same proof: the nonce is spent, so the replay fails.
            let challenge = try Durable_V1_ChallengeResponse(
                serializedBytes: try await connection.call(AuthMethods.challenge, payload: []))
            let request = Durable_V1_AuthenticateRequest.with {
                $0.proof = Data(AuthKeys.client.proof(for: Array(challenge.nonce)))
            }
            let proof: [UInt8] = try request.serializedBytes()
            _ = try await connection.call(AuthMethods.authenticate, payload: proof)
            let replayed = await #expect(throws: RPCError.self) {
                try await connection.call(AuthMethods.authenticate, payload: proof)
            }
            #expect(replayed?.code == .failedPrecondition)
            await connection.close()
        }
    }

    @Test("a connection that does not authenticate in time is told why and closed", .timeLimit(.minutes(1)))
    func authenticationTimeout() async throws {
        try await withSecuredServer(authenticationTimeout: .milliseconds(300)) { port, _ in
            let raw = try await RawSocket.connect(port: port)
            let frame = try #require(RawSocket.firstFrame(await raw.receiveAll()))
            #expect(frame.goAway.reason.contains("not authenticated within"), "\(frame.goAway.reason)")
        }
    }

    @Test("keys shorter than 16 characters are refused, and a key's description never shows it")
    func keyRules() throws {
        let error = #expect(throws: RPCKeyError.self) { try RPCKey("short", role: .admin) }
        #expect(error?.message == "The admin token is 5 characters long; it must have at least 16.")
        #expect(!"\(AuthKeys.cluster)".contains("cluster-secret-for-tests"))
        #expect(try RPCKey("  padded-key-0123456789\n", role: .client).secret == Array("padded-key-0123456789".utf8))
    }

    @Test("a client with a key can talk to a server that serves everyone")
    func keyAgainstOpenServer() async throws {
        try await withServer { _, port, _ in
            let connection = try await RPCConnection.connect(
                host: "127.0.0.1", port: port, credentials: AuthKeys.client)
            #expect(try await connection.call("test/echo", payload: [4]) == [4])
            await connection.close()
        }
    }
}
