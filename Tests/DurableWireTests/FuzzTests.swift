import DurableWire
import Foundation
import NIOCore
import SwiftProtobuf
import TestSupport
import Testing

/// Mutation fuzzing of the frame decoder and of every request message, from the seed corpus in `Corpus/` (one frame
/// of each kind); the live server is fuzzed in the heavy pass (HeavyTests/LiveServerFuzzTests.swift). Bounded: `DURABLE_FUZZ_ITERATIONS` inputs (20,000 by default) from the
/// seed `DURABLE_FUZZ_SEED` (random by default, printed so that a failure can be replayed).
@Suite("Fuzzing: frames and messages")
struct FuzzTests {
    static let corpusFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
        "Corpus")
    static let environment = ProcessInfo.processInfo.environment
    static let iterations = Int(environment["DURABLE_FUZZ_ITERATIONS"] ?? "") ?? 20_000
    static let seed = UInt64(environment["DURABLE_FUZZ_SEED"] ?? "") ?? UInt64.random(in: 0...UInt64.max)

    /// Every message a server decodes from a call's payload.
    static let requestTypes: [any SwiftProtobuf.Message.Type] = [
        Durable_V1_InvokeRequest.self, Durable_V1_ResolveBindingRequest.self, Durable_V1_HealthRequest.self,
        Durable_V1_StatsRequest.self, Durable_V1_AssignSlotsRequest.self, Durable_V1_DefineNamespacesRequest.self,
        Durable_V1_DropNamespacesRequest.self, Durable_V1_WebSocketEventRequest.self,
        Durable_V1_WebSocketSendRequest.self, Durable_V1_RegisterNodeRequest.self, Durable_V1_PublishRequest.self,
        Durable_V1_ChallengeRequest.self, Durable_V1_AuthenticateRequest.self,
    ]

    func mutator() throws -> Mutator {
        Mutator(corpus: try Mutator.corpus(in: Self.corpusFolder))
    }

    @Test("the seed corpus has a frame of every kind, and each decodes")
    func corpus() throws {
        let corpus = try Mutator.corpus(in: Self.corpusFolder)
        #expect(corpus.count >= 12)
        var kinds = Set<String>()
        for input in corpus {
            var buffer = ByteBuffer(bytes: input)
            var decoder = FrameDecoder()
            let frame = try #require(try decoder.decode(buffer: &buffer))
            kinds.insert(frame.kind.map { "\($0)".prefix { $0 != "(" }.description } ?? "none")
            #expect(buffer.readableBytes == 0)
        }
        #expect(kinds.count == 7, "\(kinds)")
    }

    @Test("mutated streams decode, wait for more bytes, or fail with a FrameError; payloads never crash decoding")
    func decoder() throws {
        let mutator = try mutator()
        var generator = SeededGenerator(seed: Self.seed)
        print("fuzzing the frame decoder: \(Self.iterations) inputs, DURABLE_FUZZ_SEED=\(Self.seed)")
        var outcomes = ["frames": 0, "partial": 0, "refused": 0]
        for _ in 0..<Self.iterations {
            let input = mutator.next(using: &generator)
            var buffer = ByteBuffer(bytes: input)
            var decoder = FrameDecoder(maximumFrameSize: 1 << 20)
            do {
                var decoded = false
                while let frame = try decoder.decode(buffer: &buffer) {
                    decoded = true
                    try checkRoundTrip(frame)
                }
                outcomes[decoded ? "frames" : "partial", default: 0] += 1
            } catch is FrameError {
                outcomes["refused", default: 0] += 1
            } catch {
                Issue.record("input \(input) failed with \(error), not a FrameError")
            }
        }
        print("fuzzing the frame decoder: \(outcomes)")
        #expect(outcomes.values.allSatisfy { $0 > 0 }, "every outcome was reached: \(outcomes)")
    }

    /// A decoded frame encodes to bytes that decode to the same frame, and its payload meets every decoder.
    private func checkRoundTrip(_ frame: Durable_V1_Frame) throws {
        var out = ByteBuffer()
        try FrameEncoder().encode(data: frame, out: &out)
        var decoder = FrameDecoder(maximumFrameSize: 1 << 20)
        let again = try decoder.decode(buffer: &out)
        #expect(again == frame)
        if case .call(let call) = frame.kind {
            for type in Self.requestTypes { _ = try? type.init(serializedBytes: Array(call.payload)) }
        }
    }

    /// Writes the seed corpus (run once with `DURABLE_FUZZ_WRITE_CORPUS=1`; the files are committed).
    @Test(
        "the seed corpus can be written again", .enabled(if: environment["DURABLE_FUZZ_WRITE_CORPUS"] == "1"))
    func writeCorpus() throws {
        var invoke = Durable_V1_InvokeRequest()
        invoke.namespaceID = "Counter"
        invoke.objectID = Data(repeating: 0xAB, count: 32)
        invoke.objectName = "a"
        invoke.placementEpoch = 3
        invoke.request = Durable_V1_HttpRequest.with {
            $0.method = "POST"
            $0.url = "http://counter/increment?by=1"
            $0.headers = [
                Durable_V1_Header.with {
                    $0.name = "content-type"; $0.value = "text/plain"
                }
            ]
            $0.body = Data("hello".utf8)
        }
        func call(_ method: String, _ payload: some SwiftProtobuf.Message, id: UInt64) throws -> Durable_V1_Frame {
            var frame = Durable_V1_Frame()
            frame.callID = id
            frame.call = Durable_V1_Call.with {
                $0.method = method
                $0.metadata = ["x-request-id": "r-\(id)"]
                $0.timeoutMicros = 2_000_000
                $0.payload = (try? payload.serializedData()) ?? Data()
            }
            return frame
        }
        var frames: [String: Durable_V1_Frame] = [
            "call-invoke": try call("durable.v1.Objects/Invoke", invoke, id: 1),
            "call-resolve": try call(
                "durable.v1.Objects/ResolveBinding", Durable_V1_ResolveBindingRequest.with { $0.binding = "COUNTER" },
                id: 2),
            "call-publish": try call(
                "durable.v1.Gateway/Publish",
                Durable_V1_PublishRequest.with {
                    $0.configuration = "name = \"app\"\n"; $0.environment = "staging"
                },
                id: 3),
            "call-authenticate": try call(
                AuthMethods.authenticate, Durable_V1_AuthenticateRequest.with { $0.proof = Data(count: 32) }, id: 4),
            "call-websocket": try call(
                "durable.v1.Objects/WebSocketEvent", Durable_V1_WebSocketEventRequest.with { $0.text = "hi" }, id: 5),
            "call-assign": try call(
                "durable.v1.Node/AssignSlots",
                Durable_V1_AssignSlotsRequest.with {
                    $0.assignments = [
                        Durable_V1_SlotAssignment.with {
                            $0.slot = 7; $0.epoch = 2
                        }
                    ]
                }, id: 6),
        ]
        var reply = Durable_V1_Frame()
        reply.callID = 1
        reply.reply = Durable_V1_Reply.with {
            $0.status = Durable_V1_Status.with {
                $0.code = .resourceExhausted; $0.message = "busy"; $0.overloaded = true
            }
        }
        frames["reply"] = reply
        var stream = Durable_V1_Frame()
        stream.callID = 5
        stream.streamData = Durable_V1_StreamData.with {
            $0.payload = Data("chunk".utf8); $0.end = true
        }
        frames["stream-data"] = stream
        var cancel = Durable_V1_Frame()
        cancel.callID = 1
        cancel.cancel = Durable_V1_Cancel()
        frames["cancel"] = cancel
        var ping = Durable_V1_Frame()
        ping.ping = Durable_V1_Ping.with { $0.nonce = 99 }
        frames["ping"] = ping
        var pong = Durable_V1_Frame()
        pong.pong = Durable_V1_Pong.with { $0.nonce = 99 }
        frames["pong"] = pong
        var goAway = Durable_V1_Frame()
        goAway.goAway = Durable_V1_GoAway.with {
            $0.lastCallID = 6; $0.reason = "server shutting down"
        }
        frames["go-away"] = goAway
        try FileManager.default.createDirectory(at: Self.corpusFolder, withIntermediateDirectories: true)
        for (name, frame) in frames {
            try Data(try RawSocket.encode(frame)).write(to: Self.corpusFolder.appendingPathComponent("\(name).bin"))
        }
    }
}
