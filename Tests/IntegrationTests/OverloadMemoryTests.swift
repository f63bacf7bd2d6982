import DurableClient
import DurableObjects
import Foundation
import Testing
import WireTestSupport

/// A node whose hot object is flooded far past what it can take: the queue's byte bound refuses the excess, so
/// the node's memory grows by about the bound, not by what was sent, and refused requests never run.
@Suite("Overload: memory stays bounded (real processes)", .enabled(if: HeavyTests.enabled))
struct OverloadMemoryTests {
    /// The resident set of process `pid`, in bytes, from /proc.
    static func residentBytes(_ pid: Int32) throws -> Int {
        let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])
        else { throw NodeProcessError(message: "no VmRSS in /proc/\(pid)/status") }
        return kilobytes * 1024
    }

    @Test(
        "100 MiB of requests at an object that holds 4 MiB: the excess is refused, memory grows by little",
        .timeLimit(.minutes(2)))
    func floodedObject() async throws {
        let folder = TemporaryDirectory("overload-memory")
        let node = try await NodeProcess.launch(
            dataDirectory: folder.child("data"), arguments: ["--diagnostics", "--max-queued-bytes", "\(4 << 20)"])
        let client = DurableClient(host: "127.0.0.1", port: node.port, connections: 4, credentials: TestKeys.cluster)
        let diagnostic = try await client.namespace("DIAGNOSTIC")
        let hot = diagnostic.getByName("hot")
        let bystander = diagnostic.getByName("bystander")
        #expect(try await hot.fetch("http://d/runs").text() == "0")
        #expect(try await bystander.fetch("http://d/record").text() == "1")
        let before = try Self.residentBytes(node.process.processIdentifier)

        // The object holds its input gate for 5 s; once it does, 400 requests of 256 KiB each arrive, 200 at a time,
        // while another task samples the node's memory.
        let invocationsBefore = try await client.stats().invocations
        let blocker = Task { try await hot.fetch("http://d/block?ms=5000") }
        // The node counts the blocker on arrival; as the object is idle, its first turn (which closes the gate)
        // comes before any later request is delivered.
        while try await client.stats().invocations < invocationsBefore + 1 {
            try await Task.sleep(for: .milliseconds(2))
        }
        let pid = node.process.processIdentifier
        let sampling = Task {
            var peak = 0
            while !Task.isCancelled {
                peak = max(peak, (try? Self.residentBytes(pid)) ?? 0)
                try? await Task.sleep(for: .milliseconds(10))
            }
            return peak
        }
        let body = Body.bytes([UInt8](repeating: 7, count: 256 << 10))
        let outcomes = await withTaskGroup(of: Result<Response, any Error>.self) { group in
            var outcomes: [Result<Response, any Error>] = []
            for index in 0..<400 {
                if index >= 200, let outcome = await group.next() { outcomes.append(outcome) }
                group.addTask { await Result { try await hot.fetch("http://d/record", method: .post, body: body) } }
            }
            for await outcome in group { outcomes.append(outcome) }
            return outcomes
        }
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
        // Another object on the node answers all along.
        #expect(try await bystander.fetch("http://d/runs").text() == "1")
        sampling.cancel()
        let peak = await sampling.value
        _ = try await blocker.value
        let growth = peak - before
        print("node memory: \(before >> 20) MiB before, peak \(peak >> 20) MiB (+\(growth >> 20) MiB) for 100 MiB sent")
        #expect(refused > 0 && accepted + refused == 400, "\(accepted) accepted, \(refused) refused")
        #expect(growth < 48 << 20, "the node grew by \(growth >> 20) MiB")
        #expect(try await hot.fetch("http://d/runs").text() == "\(accepted)", "only accepted requests ran")
        await client.close()
        #expect(await node.shutDown() == 0)
    }
}
