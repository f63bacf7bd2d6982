import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// A client given several servers uses one at a time and moves on when it cannot connect or loses the one in use.
    @Suite("DurableClient with several servers (real processes)")
    struct ClientFailoverTests {
        @Test("a server that does not answer is skipped; a lost one costs at most the one call that was on it")
        func movesToTheNextServer() async throws {
            let folder = TemporaryDirectory("client-failover")
            let first = try await ServerProcess.node(
                dataDirectory: folder.child("first"), arguments: ["--node-id", "first"])
            let second = try await ServerProcess.node(
                dataDirectory: folder.child("second"), arguments: ["--node-id", "second"])
            let nobody = try freeLoopbackPort()
            let client = DurableClient(
                endpoints: [
                    .init(host: "127.0.0.1", port: nobody), .init(host: "127.0.0.1", port: first.port),
                    .init(host: "127.0.0.1", port: second.port),
                ], credentials: TestKeys.cluster)
            #expect(try await client.health().nodeID == "first", "the server that refused connections was skipped")
            #expect(client.endpoint.port == first.port)

            await first.crash()
            var answers: [String] = []
            for _ in 0..<2 {
                do {
                    answers.append(try await client.health().nodeID)
                } catch let error as DurableObjectError {
                    #expect(error.retryable, "\(error)")
                    answers.append("error")
                }
            }
            #expect(answers.last == "second", "the call after the loss reached the next server: \(answers)")
            #expect(client.endpoint.port == second.port)

            // A new list replaces the old one.
            client.setEndpoints([.init(host: "127.0.0.1", port: second.port)])
            #expect(try await client.health().nodeID == "second")
            #expect(throws: DurableObjectError.self) { try DurableClient.Endpoint.list("127.0.0.1:1,nonsense") }
            #expect(
                try DurableClient.Endpoint.list(" a:1, b:2 ") == [.init(host: "a", port: 1), .init(host: "b", port: 2)])
            await client.close()
            #expect(await second.stop() == 0)
        }
    }
}
