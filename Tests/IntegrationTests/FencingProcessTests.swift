import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    /// Single instance across processes: a node is paused (SIGSTOP) while one of its objects is inside a call; while it
    /// is paused, the slot's epoch moves on (what a gateway does when it gives the slot to a new assignment); when the
    /// node resumes, the old activation's write is refused and never reaches disk.
    @Suite("Fencing a paused node's stale activation (real processes)")
    struct FencingProcessTests {
        @Test(
            "after SIGSTOP, an epoch raise and SIGCONT, the stale activation's write is refused and nothing is stored")
        func pausedNode() async throws {
            let folder = TemporaryDirectory("fencing-process")
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("data"), executable: BuiltExecutable.testServer)
            let client = DurableClient(
                host: "127.0.0.1", port: node.port, connections: 2, credentials: TestKeys.cluster)
            let diagnostic = try await client.namespace("DIAGNOSTIC")
            let id = diagnostic.idFromName("fenced")
            let slot = (UInt32(id.bytes[0]) << 8 | UInt32(id.bytes[1])) % 4096
            func assign(epoch: UInt64) async throws {
                let _: Durable_V1_AssignSlotsResponse = try await client.call(
                    Methods.assignSlots,
                    Durable_V1_AssignSlotsRequest.with { request in
                        request.assignments = [
                            .with {
                                $0.slot = slot; $0.epoch = epoch
                            }
                        ]
                    })
            }
            func invoke(_ path: String, epoch: UInt64) async throws -> Response {
                try await client.invoke(
                    namespaceID: diagnostic.namespaceID, id: id, request: Request(url: "http://d" + path),
                    timeout: .seconds(30), epoch: epoch)
            }
            try await assign(epoch: 1)
            #expect(try await invoke("/runs", epoch: 1).text() == "0")

            // The old activation starts a call that writes once the test releases it; the node is paused once the
            // call waits, the slot's epoch is raised meanwhile (the raise waits in the paused node's socket and is
            // read when it resumes), and only then is the call let go.
            let observer = diagnostic.getByName("observer")
            let stale = Task { try await invoke("/wait-record?latch=fence", epoch: 1) }
            #expect(await eventually { (try? await observer.fetch("http://d/waiting?latch=fence").text()) == "1" })
            node.child.send(SIGSTOP)
            let raise = Task { try await assign(epoch: 2) }
            node.child.send(SIGCONT)
            try await raise.value
            #expect(try await observer.fetch("http://d/release?latch=fence").text() == "released")

            let outcome = await Result { try await stale.value }
            guard case .failure(let error as DurableObjectError) = outcome else {
                Issue.record("the stale write was not refused: \(outcome)")
                return
            }
            #expect(error == .instanceInactive, "\(error)")
            let refused = await #expect(throws: DurableObjectError.self) { try await invoke("/runs", epoch: 1) }
            #expect(refused?.code == .failedPrecondition)
            #expect(try await invoke("/runs", epoch: 2).text() == "0", "the new activation finds nothing")
            await client.close()
            #expect(await node.stop() == 0)

            // Nor is anything on disk.
            let restarted = try await ServerProcess.node(
                dataDirectory: folder.child("data"), executable: BuiltExecutable.testServer)
            let again = DurableClient(host: "127.0.0.1", port: restarted.port, credentials: TestKeys.cluster)
            let reread = try await again.invoke(
                namespaceID: diagnostic.namespaceID, id: id, request: Request(url: "http://d/runs"),
                timeout: .seconds(10),
                epoch: 2)
            #expect(reread.text() == "0")
            await again.close()
            #expect(await restarted.stop() == 0)
        }
    }
}
