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

/// Splits the byte stream into frames: a 4-byte big-endian length, then that many bytes.
///
/// A frame longer than `maximumFrameSize` is refused from its header alone, before its body arrives, so a peer
/// cannot make the process buffer an arbitrary amount.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
    /// Decoded frames.
    public typealias InboundOut = Durable_V1_Frame

    /// The largest frame accepted.
    public let maximumFrameSize: Int

    /// Creates a decoder that refuses frames over `maximumFrameSize` bytes.
    public init(maximumFrameSize: Int = defaultMaximumFrameSize) {
        self.maximumFrameSize = maximumFrameSize
    }

    /// Decodes one frame if a whole one is buffered.
    public mutating func decode(buffer: inout ByteBuffer) throws -> Durable_V1_Frame? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard Int(length) <= maximumFrameSize else {
            throw FrameError("frame of \(length) bytes is over the maximum of \(maximumFrameSize) bytes")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        let body = buffer.readSlice(length: Int(length))!
        do {
            return try Durable_V1_Frame(serializedBytes: Array(body.readableBytesView))
        } catch {
            throw FrameError("frame of \(length) bytes does not decode as a durable.v1.Frame: \(error)")
        }
    }

    /// Decodes what remains when the connection closes; a partial frame is dropped.
    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Durable_V1_Frame? {
        try decode(buffer: &buffer)
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
