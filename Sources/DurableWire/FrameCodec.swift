import NIOCore
import SwiftProtobuf

/// The default largest frame a peer may send: 16 MiB.
public let defaultMaximumFrameSize = 16 << 20

/// A frame the wire codec refused.
public struct FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// Why.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The reason.
    public var description: String { message }
}

/// Where the decoder of one connection stands: since when it has held part of a frame (for the server's
/// frame timeout, which closes a connection that starts a frame and never finishes it). Lives on the
/// connection's event loop.
public final class FrameProgress {
    /// When the partial frame now buffered started arriving; `nil` when no partial frame is buffered.
    public var partialSince: NIODeadline?

    /// Creates a tracker with nothing buffered.
    public init() {}
}

/// Splits the byte stream into frames: a 4-byte big-endian length, then that many bytes.
///
/// A frame longer than `maximumFrameSize` is refused from its header alone, before its body arrives, so a peer
/// cannot make the process buffer an arbitrary amount.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    /// Decoded frames.
    public typealias InboundOut = Durable_V1_Frame

    /// The largest frame accepted.
    public let maximumFrameSize: Int

    /// Tells the server since when a partial frame has been waiting (optional).
    public let progress: FrameProgress?

    /// Creates a decoder that refuses frames over `maximumFrameSize` bytes.
    public init(maximumFrameSize: Int = defaultMaximumFrameSize, progress: FrameProgress? = nil) {
        self.maximumFrameSize = maximumFrameSize
        self.progress = progress
    }

    /// Decodes one frame if a whole one is buffered.
    public mutating func decode(buffer: inout ByteBuffer) throws -> Durable_V1_Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else {
            notePartial(buffer.readableBytes > 0)
            return nil
        }
        guard Int(length) <= maximumFrameSize else {
            throw FrameError("frame of \(length) bytes is over the maximum of \(maximumFrameSize) bytes")
        }
        guard buffer.readableBytes >= 4 + Int(length) else {
            notePartial(true)
            return nil
        }
        notePartial(false)
        buffer.moveReaderIndex(forwardBy: 4)
        let body = buffer.readSlice(length: Int(length))!
        do {
            return try Durable_V1_Frame(serializedBytes: FrameBody(buffer: body))
        } catch {
            throw FrameError("frame of \(length) bytes does not decode as a durable.v1.Frame: \(error)")
        }
    }

    private func notePartial(_ partial: Bool) {
        guard let progress else { return }
        if !partial {
            progress.partialSince = nil
        } else if progress.partialSince == nil {
            progress.partialSince = .now()
        }
    }

    /// Decodes what remains when the connection closes; a partial frame is dropped.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Durable_V1_Frame? {
        try decode(buffer: &buffer)
    }
}

/// A frame's bytes as SwiftProtobuf reads them: straight from the connection's buffer, with no copy into an array.
private struct FrameBody: SwiftProtobufContiguousBytes {
    var buffer: ByteBuffer

    init(buffer: ByteBuffer) { self.buffer = buffer }

    init(repeating byte: UInt8, count: Int) {
        buffer = ByteBuffer(repeating: byte, count: count)
    }

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        buffer = ByteBuffer(bytes: sequence)
    }

    var count: Int { buffer.readableBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}

/// Writes frames: the 4-byte big-endian length, then the serialized frame.
public struct FrameEncoder: MessageToByteEncoder {
    /// Frames to encode.
    public typealias OutboundIn = Durable_V1_Frame

    /// Creates an encoder.
    public init() {}

    /// Encodes `frame` into `out`.
    public func encode(data frame: Durable_V1_Frame, out: inout ByteBuffer) throws {
        let bytes: [UInt8] = try frame.serializedBytes()
        out.writeInteger(UInt32(bytes.count))
        out.writeBytes(bytes)
    }
}
