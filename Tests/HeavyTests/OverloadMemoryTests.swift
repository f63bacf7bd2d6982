import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// A node whose hot object is flooded far past what it can take: the queue's byte bound refuses the excess, so
    /// the node's memory grows by about the bound, not by what was sent, and refused requests never run.
    @Suite("Overload: memory stays bounded (real processes)")
    struct OverloadMemoryTests {
        /// The resident set of process `pid`, in bytes, from /proc.
        static func residentBytes(_ pid: Int32) throws -> Int {
            let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
                let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
            else { throw ChildProcess.Failure(description: "no VmRSS in /proc/\(pid)/status") }
            return kilobytes * 1024
        }

        @Test(
            "100 MiB of requests at an object that holds 4 MiB: the excess is refused, memory grows by little")
        func floodedObject() async throws {
            let folder = TemporaryDirectory("overload-memory")
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("data"), executable: BuiltExecutable.testServer,
                arguments: ["--max-queued-bytes", "\(4 << 20)"])
            let client = DurableClient(
                host: "127.0.0.1", port: node.port, connections: 4, credentials: TestKeys.cluster)
            let diagnostic = try await client.namespace("DIAGNOSTIC")
            let hot = diagnostic.getByName("hot")
            let bystander = diagnostic.getByName("bystander")
            #expect(try await hot.fetch("http://d/runs").text() == "0")
            #expect(try await bystander.fetch("http://d/record").text() == "1")
            let before = try Self.residentBytes(node.pid)

            // The object holds its input gate until the test releases it; once it does, 400 requests of 256 KiB each
            // arrive, 200 at a time, while another task samples the node's memory. The gate opens once the node has
            // seen all of them (it counts each on arrival, refused or not).
            let invocationsBefore = try await client.stats().invocations
            let blocker = Task { try await hot.fetch("http://d/block?latch=flood") }
            // The node counts the blocker on arrival; as the object is idle, its first turn (which closes the gate)
            // comes before any later request is delivered.
            #expect(await eventually { (try? await client.stats().invocations) ?? 0 > invocationsBefore })
            let pid = node.pid
            let sampling = Task {
                var peak = 0
                while !Task.isCancelled {
                    peak = max(peak, (try? Self.residentBytes(pid)) ?? 0)
                    try? await Task.sleep(for: .milliseconds(10))  // the sampling interval, not a wait for an event
                }
                return peak
            }
            let body = Body.bytes([UInt8](repeating: 7, count: 256 << 10))
            let flood = Task {
                await withTaskGroup(of: Result<Response, any Error>.self) { group in
                    var outcomes: [Result<Response, any Error>] = []
                    for index in 0..<400 {
                        if index >= 200, let outcome = await group.next() { outcomes.append(outcome) }
                        group.addTask {
                            await Result { try await hot.fetch("http://d/record", method: .post, body: body) }
                        }
                    }
                    for await outcome in group { outcomes.append(outcome) }
                    return outcomes
                }
            }
            #expect(
                await eventually(timeout: .seconds(120)) {
                    (try? await client.stats().invocations) ?? 0 >= invocationsBefore + 401
                }, "the node saw the whole flood")
            sampling.cancel()
            let peak = await sampling.value
            #expect(try await bystander.fetch("http://d/release?latch=flood").text() == "released")
            #expect(try await blocker.value.text() == "blocked until flood")
            let outcomes = await flood.value
            var accepted = 0
            var refused = 0
            for outcome in outcomes {
                switch outcome {
                case .success: accepted += 1
                case .failure(let error as DurableObjectError) where error.overloaded:
                    #expect(error.message == "Durable Object is overloaded. Too much data queued.")
                    refused += 1
                case .failure(let error): Issue.record("unexpected error: \(error)")
                }
            }
            // Another object on the node answered all along.
            #expect(try await bystander.fetch("http://d/runs").text() == "1")
            let growth = peak - before
            print(
                "node memory: \(before >> 20) MiB before, peak \(peak >> 20) MiB (+\(growth >> 20) MiB) for 100 MiB sent"
            )
            #expect(refused > 0 && accepted + refused == 400, "\(accepted) accepted, \(refused) refused")
            #expect(growth < 48 << 20, "the node grew by \(growth >> 20) MiB")
            #expect(try await hot.fetch("http://d/runs").text() == "\(accepted)", "only accepted requests ran")
            await client.close()
            #expect(await node.stop() == 0)
        }
    }
}
