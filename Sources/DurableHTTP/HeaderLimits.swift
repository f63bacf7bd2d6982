import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1

/// The limits on a request's head that the bridge enforces (NIO's HTTP decoder does the counting).
public struct HTTPHeaderLimits: Sendable, Hashable {
    /// The largest single header line (name and value), in bytes.
    public var maximumFieldSize: Int
    /// The largest sum of every header's name and value, in bytes.
    public var maximumListSize: Int
    /// The most header fields.
    public var maximumFieldCount: Int

    /// Creates limits; the defaults are NIO's sizes (80 KiB) and Hummingbird's count (1,000).
    public init(maximumFieldSize: Int = 80 * 1024, maximumListSize: Int = 80 * 1024, maximumFieldCount: Int = 1_000) {
        self.maximumFieldSize = maximumFieldSize
        self.maximumListSize = maximumListSize
        self.maximumFieldCount = maximumFieldCount
    }
}

/// Wraps a server child channel so that a connection whose *first* request cannot be parsed (headers over the
/// limits, or not HTTP at all) is answered and closed. Hummingbird answers such errors on later requests itself,
/// but with WebSocket upgrades enabled the first request is parsed before its handler exists, and the connection
/// would otherwise hang open without an answer.
struct AnsweringParseErrors<Inner: ServerChildChannel>: ServerChildChannel {
    let inner: Inner
    let limits: HTTPHeaderLimits

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
        inner.setup(channel: channel, logger: logger).flatMapThrowing { value in
            try channel.pipeline.syncOperations.addHandler(RawResponseWriter(), position: .first)
            try channel.pipeline.syncOperations.addHandler(ParseErrorAnswer(limits: limits, logger: logger))
            return value
        }
    }

    func handle(value: Inner.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Sits next to the socket, so that bytes written through it reach the peer without passing the HTTP encoders.
final class RawResponseWriter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
}

/// Answers a parse error of a connection's first request: 431 for headers over the limits, 400 otherwise.
final class ParseErrorAnswer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let limits: HTTPHeaderLimits
    private let logger: Logger
    private var sawRequest = false

    init(limits: HTTPHeaderLimits, logger: Logger) {
        self.limits = limits
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        sawRequest = true
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError, !sawRequest,
            let raw = try? context.pipeline.syncOperations.context(handlerType: RawResponseWriter.self)
        else {
            context.fireErrorCaught(error)
            return
        }
        sawRequest = true
        let (status, message): (String, String)
        switch parseError {
        case .headerOverflow:
            status = "431 Request Header Fields Too Large"
            message =
                "The request headers are over the limit (\(limits.maximumFieldSize) bytes a field, "
                + "\(limits.maximumListSize) bytes in all, \(limits.maximumFieldCount) fields)."
        default:
            status = "400 Bad Request"
            message = "The request is not valid HTTP/1.1 (\(parseError))."
        }
        logger.debug("answered a request that does not parse", metadata: ["status": "\(status)"])
        let body = Array(message.utf8)
        var buffer = context.channel.allocator.buffer(capacity: body.count + 160)
        buffer.writeString(
            "HTTP/1.1 \(status)\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n"
                + "Content-Length: \(body.count)\r\n\r\n")
        buffer.writeBytes(body)
        let channel = context.channel
        raw.writeAndFlush(NIOAny(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }
}
