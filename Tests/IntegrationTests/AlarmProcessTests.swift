import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// Alarms live in the node's metadata: a node killed before an alarm is due runs it once it is back.
    @Suite("Alarms across node restarts (real processes)")
    struct AlarmProcessTests {
        @Test("an alarm set before SIGKILL runs after the restart; a future one is kept")
        func firesAfterRestart() async throws {
            let folder = TemporaryDirectory("alarm-process")
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("data"), executable: BuiltExecutable.testServer)
            let client = DurableClient(
                host: "127.0.0.1", port: node.port, connections: 1, credentials: TestKeys.cluster)
            let diagnostic = try await client.namespace("DIAGNOSTIC")
            func call(_ client: DurableClient, _ name: String, _ path: String) async throws -> String {
                try await client.invoke(
                    namespaceID: diagnostic.namespaceID, id: diagnostic.idFromName(name),
                    request: Request(url: "http://d" + path), timeout: .seconds(10)
                ).text()
            }
            #expect(try await call(client, "soon", "/alarm?ms=3000") == "set")
            #expect(try await call(client, "later", "/alarm?ms=3600000") == "set")
            let later = try await call(client, "later", "/alarm-time")
            let setAt = Date()
            // The acknowledged alarm is durable: the node dies before it is due.
            await node.crash()
            await client.close()
            #expect(await eventually(timeout: .seconds(60)) { Date().timeIntervalSince(setAt) > 3.1 })

            let restarted = try await ServerProcess.node(
                dataDirectory: folder.child("data"), executable: BuiltExecutable.testServer)
            let again = DurableClient(
                host: "127.0.0.1", port: restarted.port, connections: 1, credentials: TestKeys.cluster)
            #expect(await eventually(timeout: .seconds(60)) { (try? await call(again, "soon", "/alarms")) == "1" })
            #expect(try await call(again, "soon", "/alarm-time") == "none")
            #expect(try await call(again, "later", "/alarm-time") == later)
            #expect(try await call(again, "later", "/alarms") == "0")
            await again.close()
            #expect(await restarted.stop() == 0)
        }
    }
}
