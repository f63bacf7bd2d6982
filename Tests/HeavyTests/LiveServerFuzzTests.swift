import DurableWire
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// Mutated frames from the wire tests' seed corpus, sent to a live server over many connections (bounded by
    /// `DURABLE_FUZZ_ITERATIONS`, from the seed `DURABLE_FUZZ_SEED`, as the in-process fuzz tests are).
    @Suite("Fuzzing a live server")
    struct LiveServerFuzzTests {
        static let corpusFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("DurableWireTests/Corpus")
        static let environment = ProcessInfo.processInfo.environment
        static let iterations = Int(environment["DURABLE_FUZZ_ITERATIONS"] ?? "") ?? 20_000
        static let seed = UInt64(environment["DURABLE_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)

        func mutator() throws -> Mutator {
            Mutator(corpus: try Mutator.corpus(in: Self.corpusFolder))
        }

        @Test(
            "a live server, open or requiring keys, answers or closes every hostile connection and keeps serving others",
            arguments: [false, true])
        func liveServer(requiresKeys: Bool) async throws {
            let mutator = try mutator()
            var generator = SeededGenerator(seed: Self.seed ^ (requiresKeys ? 0xA17 : 0x5EED))
            let connections = max(50, Self.iterations / 100)
            print("fuzzing a live server: \(connections) connections, DURABLE_FUZZ_SEED=\(Self.seed)")
            func run(_ port: Int) async throws {
                let healthy = try await RPCConnection.connect(
                    host: "127.0.0.1", port: port, credentials: requiresKeys ? AuthKeys.client : nil)
                for index in 0..<connections {
                    var stream: [UInt8] = []
                    for _ in 0..<Int.random(in: 1...3, using: &generator) { stream += mutator.next(using: &generator) }
                    let input = stream
                    let raw = try await RawSocket.connect(port: port)
                    await raw.send(input)
                    raw.shutdownWrite()
                    _ = await raw.receiveAll()
                    if index % 25 == 0 {
                        #expect(
                            try await healthy.call("test/echo", payload: [UInt8(index % 256)]) == [UInt8(index % 256)])
                    }
                }
                #expect(try await healthy.call("test/echo", payload: [42]) == [42])
                await healthy.close()
            }
            if requiresKeys {
                try await withSecuredServer { port, _ in try await run(port) }
            } else {
                try await withServer(maximumFrameSize: 1 << 20, frameTimeout: .milliseconds(200)) { _, port, _ in
                    try await run(port)
                }
            }
        }
    }
}
