import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// A primary replicating to its standby without etcd (`durable node --standby-for P --primary HOST:PORT`):
    /// writes wait for both copies; with the standby gone, the node records that it runs alone, logs it, and goes
    /// on; the standby back catches up and is in step again.
    @Suite("Replication to a standby (real processes)")
    struct ReplicationTests {
        static func position(of standby: ServerProcess) async throws -> Durable_V1_StandbyPosition {
            let client = DurableClient(host: "127.0.0.1", port: standby.port, credentials: TestKeys.cluster)
            defer { Task { await client.close() } }
            return try await client.call(Methods.nodeStandbyStatus, Durable_V1_StandbyStatusRequest())
        }

        @Test(
            "writes reach the standby; without it the primary logs that it runs alone and goes on; back, it catches up")
        func standbyFollowsAndLeaves() async throws {
            let folder = TemporaryDirectory("replication")
            let primary = try await ServerProcess.node(
                dataDirectory: folder.child("node1"),
                arguments: ["--node-id", "node1", "--log-level", "notice", "--standby-timeout", "0.5"])
            let standbyArguments = [
                "--node-id", "node2", "--standby-for", "node1", "--primary", "127.0.0.1:\(primary.port)",
            ]
            var standby = try await ServerProcess.node(
                dataDirectory: folder.child("node2"), arguments: standbyArguments)
            let client = DurableClient(
                host: "127.0.0.1", port: primary.port, defaultTimeout: .seconds(10), credentials: TestKeys.cluster)
            let counter = try await client.namespace("COUNTER").getByName("replicated")
            #expect(
                await eventually(timeout: .seconds(30)) { primary.child.errorText.contains("standby in step") })

            for expected in 1...20 {
                #expect(try await counter.fetch("http://c/increment").text() == "\(expected)")
            }
            // Each acknowledged increment is on the standby: its position is at least the primary's 20 groups.
            let followed = try await Self.position(of: standby)
            #expect(followed.primaryNodeID == "node1" && followed.sequence >= 20 && !followed.catchingUp)

            // A call to an object on the standby is refused: it serves nothing until it takes over.
            let onStandby = DurableClient(
                host: "127.0.0.1", port: standby.port, defaultTimeout: .seconds(5), credentials: TestKeys.cluster)
            let refused = await #expect(throws: DurableObjectError.self) {
                try await onStandby.namespace("COUNTER").getByName("replicated").fetch("http://c/")
            }
            #expect(refused?.message.contains("is the standby of 'node1'") == true, "\(String(describing: refused))")
            await onStandby.close()

            // Without the standby, the next write waits until the node records that it runs alone, then goes on.
            await standby.crash()
            #expect(try await counter.fetch("http://c/increment").text() == "21")
            // Logged before the write was acknowledged; the test reads the node's output through a pipe, later.
            #expect(
                await eventually(timeout: .seconds(30)) { primary.child.errorText.contains("running without standby") })

            // Back on its data, the standby catches up and is in step again.
            standby = try await ServerProcess.node(dataDirectory: folder.child("node2"), arguments: standbyArguments)
            #expect(
                await eventually(timeout: .seconds(30)) {
                    primary.child.errorText.components(separatedBy: "standby in step").count == 3
                })
            #expect(try await counter.fetch("http://c/increment").text() == "22")
            let caughtUp = try await Self.position(of: standby)
            #expect(caughtUp.sequence > followed.sequence && !caughtUp.catchingUp, "\(caughtUp)")
            await client.close()
            _ = await standby.stop()
            _ = await primary.stop()
        }
    }
}
