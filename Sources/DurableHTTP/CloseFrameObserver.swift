import NIOCore
import NIOHTTP1
import Synchronization

/// What a client's close frame said: its status code (`nil` when the frame carried none) and reason.
struct ClientCloseFrame: Sendable, Equatable {
    var code: Int?
    var reason: String
}

/// Where a ``CloseFrameObserver`` leaves the close frame it saw, for the socket's task to read.
final class ObservedClose: Sendable {
    private let frame = Mutex<ClientCloseFrame?>(nil)

    /// The close frame the client sent, once it arrived.
    var closeFrame: ClientCloseFrame? { frame.withLock { $0 } }

    fileprivate func record(_ seen: ClientCloseFrame) {
        frame.withLock { $0 = seen }
    }
}

/// Reads the close frame a WebSocket client sends, which the WebSocket library consumes without handing on.
///
/// It sits in the connection's pipeline in front of the protocol decoders from the moment the bridge accepts an
/// upgrade (before the `101` is sent, so every byte it sees afterwards is WebSocket framing). It passes every
/// byte on untouched and parses only frame headers: payloads are skipped, except a close frame's, which is at most
/// 125 bytes. After a close frame (or anything it cannot parse) it stops looking.
final class CloseFrameObserver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private enum State {
        /// Collecting the bytes of a frame header.
        case header([UInt8])
        /// Skipping the rest of a data frame's payload.
        case skipping(remaining: UInt64)
        /// Collecting a close frame's payload, to unmask with `mask`.
        case closePayload(remaining: Int, mask: [UInt8], bytes: [UInt8])
        /// Saw the close frame, or gave up.
        case done
    }

    private var state = State.header([])
    private let observed: ObservedClose

    init(_ observed: ObservedClose) {
        self.observed = observed
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if case .done = state {
            context.fireChannelRead(data)
            return
        }
        buffer.withUnsafeReadableBytes { observe($0) }
        context.fireChannelRead(data)
    }

    private func observe(_ bytes: UnsafeRawBufferPointer) {
        var index = 0
        while index < bytes.count {
            switch state {
            case .done:
                return
            case .skipping(let remaining):
                let step = Int(min(remaining, UInt64(bytes.count - index)))
                index += step
                state = remaining == UInt64(step) ? .header([]) : .skipping(remaining: remaining - UInt64(step))
            case .closePayload(let remaining, let mask, var payload):
                let step = min(remaining, bytes.count - index)
                payload.append(contentsOf: bytes[index..<index + step])
                index += step
                if step == remaining {
                    finish(payload: payload, mask: mask)
                } else {
                    state = .closePayload(remaining: remaining - step, mask: mask, bytes: payload)
                }
            case .header(var header):
                header.append(bytes[index])
                index += 1
                state = .header(header)
                if let parsed = Self.parseHeader(header) { begin(parsed) }
            }
        }
    }

    private struct Header {
        var opcode: UInt8
        var payloadLength: UInt64
        var mask: [UInt8]
    }

    /// The header, once `bytes` hold all of it.
    private static func parseHeader(_ bytes: [UInt8]) -> Header? {
        guard bytes.count >= 2 else { return nil }
        let masked = bytes[1] & 0x80 != 0
        let shortLength = bytes[1] & 0x7F
        let lengthBytes = shortLength == 126 ? 2 : shortLength == 127 ? 8 : 0
        let total = 2 + lengthBytes + (masked ? 4 : 0)
        guard bytes.count >= total else { return nil }
        var length = UInt64(shortLength)
        if lengthBytes > 0 {
            length = bytes[2..<2 + lengthBytes].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        let mask = masked ? Array(bytes[(2 + lengthBytes)..<total]) : []
        return Header(opcode: bytes[0] & 0x0F, payloadLength: length, mask: mask)
    }

    private func begin(_ header: Header) {
        guard header.opcode == 0x8 else {
            state = header.payloadLength == 0 ? .header([]) : .skipping(remaining: header.payloadLength)
            return
        }
        guard header.payloadLength <= 125 else {
            // Not a valid close frame: the protocol decoder fails the connection.
            state = .done
            return
        }
        if header.payloadLength == 0 {
            finish(payload: [], mask: header.mask)
        } else {
            state = .closePayload(remaining: Int(header.payloadLength), mask: header.mask, bytes: [])
        }
    }

    private func finish(payload: [UInt8], mask: [UInt8]) {
        let unmasked =
            mask.isEmpty ? payload : payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        let frame: ClientCloseFrame
        if unmasked.count >= 2 {
            frame = ClientCloseFrame(
                code: Int(unmasked[0]) << 8 | Int(unmasked[1]),
                reason: String(decoding: unmasked.dropFirst(2), as: UTF8.self))
        } else {
            frame = ClientCloseFrame(code: nil, reason: "")
        }
        observed.record(frame)
        state = .done
    }
}

@available(*, unavailable)
extension CloseFrameObserver: Sendable {}

extension ObservedClose {
    /// Starts observing `channel`'s client close frame: in front of the HTTP decoder, which the upgrade replaces
    /// with the WebSocket decoder. Returns `nil` (codes then read 1005) when the pipeline has no HTTP decoder.
    static func observe(_ channel: any Channel) async -> ObservedClose? {
        let observed = ObservedClose()
        let installed = try? await channel.eventLoop.submit { () -> Bool in
            let pipeline = channel.pipeline.syncOperations
            guard let decoder = try? pipeline.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) else {
                return false
            }
            try pipeline.addHandler(CloseFrameObserver(observed), position: .before(decoder))
            return true
        }.get()
        return installed == true ? observed : nil
    }
}
