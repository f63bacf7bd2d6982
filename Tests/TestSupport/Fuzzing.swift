import DurableWire
import Foundation

/// A small, seeded pseudo-random generator (SplitMix64), so that every fuzz run can be repeated from its seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator; the same seed gives the same sequence.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Mutates byte strings the way coverage-less fuzzers do: bit flips, interesting values, insertions, deletions,
/// truncation, duplication, splicing with another input, and rewriting a frame's length prefix.
public struct Mutator {
    /// The inputs mutations start from.
    public let corpus: [[UInt8]]

    /// Creates a mutator over `corpus` (at least one input).
    public init(corpus: [[UInt8]]) {
        precondition(!corpus.isEmpty, "a fuzz corpus needs at least one input")
        self.corpus = corpus
    }

    /// The corpus of frames committed under `folder` (every `*.bin` file, in name order).
    public static func corpus(in folder: URL) throws -> [[UInt8]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".bin") }
        return try names.sorted().map { Array(try Data(contentsOf: folder.appendingPathComponent($0))) }
    }

    /// A mutated input: one to four mutations of a corpus entry.
    public func next(using generator: inout SeededGenerator) -> [UInt8] {
        var bytes = corpus.randomElement(using: &generator)!
        for _ in 0..<Int.random(in: 1...4, using: &generator) { mutate(&bytes, using: &generator) }
        return bytes
    }

    private func mutate(_ bytes: inout [UInt8], using generator: inout SeededGenerator) {
        let interesting: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x12, 0x1A, 0x22]
        switch Int.random(in: 0..<9, using: &generator) {
        case 0 where !bytes.isEmpty:
            let index = Int.random(in: bytes.indices, using: &generator)
            bytes[index] ^= 1 << UInt8.random(in: 0..<8, using: &generator)
        case 1 where !bytes.isEmpty:
            bytes[Int.random(in: bytes.indices, using: &generator)] = interesting.randomElement(using: &generator)!
        case 2:
            let count = Int.random(in: 1...16, using: &generator)
            let insert = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            bytes.insert(contentsOf: insert, at: Int.random(in: 0...bytes.count, using: &generator))
        case 3 where bytes.count > 1:
            let start = Int.random(in: 0..<bytes.count, using: &generator)
            let end = min(bytes.count, start + Int.random(in: 1...16, using: &generator))
            bytes.removeSubrange(start..<end)
        case 4 where !bytes.isEmpty:
            bytes = Array(bytes.prefix(Int.random(in: 0..<bytes.count, using: &generator)))
        case 5 where !bytes.isEmpty:
            let start = Int.random(in: 0..<bytes.count, using: &generator)
            let end = min(bytes.count, start + Int.random(in: 1...32, using: &generator))
            bytes.insert(contentsOf: bytes[start..<end], at: Int.random(in: 0...bytes.count, using: &generator))
        case 6:
            let other = corpus.randomElement(using: &generator)!
            bytes += other.prefix(Int.random(in: 0...other.count, using: &generator))
        case 7 where bytes.count >= 4:
            // A length prefix off by a little, or wildly.
            let body = UInt32(bytes.count - 4)
            let lengths: [UInt32] = [
                0, 1, body &- 1, body &+ 1, body &* 2, 0x7FFF_FFFF, 0xFFFF_FFFF,
                UInt32.random(in: 0...UInt32.max, using: &generator),
            ]
            let length = lengths.randomElement(using: &generator)!
            bytes[0] = UInt8(length >> 24)
            bytes[1] = UInt8(length >> 16 & 0xFF)
            bytes[2] = UInt8(length >> 8 & 0xFF)
            bytes[3] = UInt8(length & 0xFF)
        default:
            let count = Int.random(in: 0...64, using: &generator)
            bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
        }
    }
}
