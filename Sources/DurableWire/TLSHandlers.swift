import Logging
import NIOCore
import NIOSSL
import NIOTLS
import SwiftProtobuf

/// The first byte of a TLS handshake record; a frame's first byte (the top byte of a length of at most a few
/// megabytes) is never this.
private let tlsHandshakeRecord: UInt8 = 0x16

/// How the go-away reason a TLS port sends to a plaintext peer starts: clients recognise it.
let plaintextRefusedMarker = "TLS required:"

/// The go-away reason a TLS port sends to a peer that speaks plaintext.
let plaintextRefusedReason =
    plaintextRefusedMarker + " this port accepts only TLS connections, and this one spoke plaintext; connect with TLS "
    + "and trust the cluster's CA"

/// First in a server connection's pipeline: looks at the first byte the peer sends and either puts the TLS
/// handler in place (a TLS server, and a TLS client hello), refuses the connection with a reason the peer can read
/// (a TLS server, and plaintext: a go-away frame in plaintext; a plaintext server, and a TLS hello: closed, and
/// logged), or steps aside (a plaintext server, and plaintext).
final class TLSDetector: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let tls: RPCServerTLS?
    private let logger: Logger

    init(tls: RPCServerTLS?, logger: Logger) {
        self.tls = tls
        self.logger = logger
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return }
        let peer = context.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
        switch (tls, first == tlsHandshakeRecord) {
        case (let tls?, true):
            do {
                try context.pipeline.syncOperations.addHandlers(
                    [NIOSSLServerHandler(context: tls.context), TLSHandshakeMonitor(logger: logger, peer: peer)],
                    position: .after(self))
            } catch {
                context.close(promise: nil)
                return
            }
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        case (.some, false):
            logger.warning(
                "refused a connection: the peer spoke plaintext on a TLS port",
                metadata: ["peer": "\(peer)"])
            var frame = Durable_V1_Frame()
            frame.goAway = Durable_V1_GoAway.with { $0.reason = plaintextRefusedReason }
            var out = context.channel.allocator.buffer(capacity: 256)
            if let body: [UInt8] = try? frame.serializedBytes() {
                out.writeInteger(UInt32(body.count))
                out.writeBytes(body)
            }
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
        case (nil, true):
            logger.warning(
                "refused a connection: the peer started a TLS handshake on a plaintext port (no --tls-cert here)",
                metadata: ["peer": "\(peer)"])
            context.close(promise: nil)
        case (nil, false):
            context.fireChannelRead(data)
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        }
    }
}

/// Behind a server's TLS handler: logs a failed handshake with a reason an operator can act on, and closes the
/// connection (the error goes no further: there is no frame to answer it with).
final class TLSHandshakeMonitor: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let logger: Logger
    private let peer: String
    private var handshakeCompleted = false

    init(logger: Logger, peer: String) {
        self.logger = logger
        self.peer = peer
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event {
            handshakeCompleted = true
            logger.debug("TLS handshake completed", metadata: ["peer": "\(peer)"])
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard TLSFailure.isTLSError(error) else {
            context.fireErrorCaught(error)
            return
        }
        guard !handshakeCompleted else {
            // A peer that goes without a TLS close, say: the connection is over either way.
            logger.debug("TLS connection ended", metadata: ["peer": "\(peer)", "error": "\(error)"])
            context.close(promise: nil)
            return
        }
        logger.warning(
            "refused a connection: TLS handshake failed",
            metadata: ["peer": "\(peer)", "reason": "\(TLSFailure.serverSideReason(error))"])
        context.close(promise: nil)
    }
}

/// On a client connection: completes `handshake` when the TLS handshake is done, or fails it with an error that
/// says what went wrong.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let handshake: EventLoopPromise<Void>
    private let address: String
    private var done = false

    init(handshake: EventLoopPromise<Void>, address: String) {
        self.handshake = handshake
        self.address = address
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case TLSUserEvent.handshakeCompleted = event, !done {
            done = true
            handshake.succeed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if !done {
            done = true
            handshake.fail(RPCError.unavailable(TLSFailure.clientSideReason(error, address: address)))
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !done {
            done = true
            handshake.fail(
                RPCError.unavailable(
                    "TLS handshake with \(address) failed: the server closed the connection before the handshake "
                        + "ended (it may serve plaintext only: a server without --tls-cert does)."))
        }
        context.fireChannelInactive()
    }
}

/// Explains TLS failures in words an operator can act on.
enum TLSFailure {
    static func isTLSError(_ error: any Error) -> Bool {
        error is NIOSSLError || error is NIOSSLExtraError || error is BoringSSLError
    }

    /// Why a client's handshake with `address` failed.
    static func clientSideReason(_ error: any Error, address: String) -> String {
        let text = "\(error)"
        let reason: String
        if error is NIOSSLExtraError, text.contains("failedToValidateHostname") || text.contains("hostname") {
            reason =
                "the server's certificate is not valid for \(address) (its names and IP addresses do not include "
                + "the host we connected to)"
        } else if text.contains("CERTIFICATE_VERIFY_FAILED") {
            reason = "the server's certificate is not signed by a CA this client trusts (--tls-ca)"
        } else if text.contains("ALERT_UNKNOWN_CA") || text.contains("ALERT_BAD_CERTIFICATE")
            || text.contains("ALERT_CERTIFICATE_REQUIRED") || text.contains("ALERT_HANDSHAKE_FAILURE")
            || text.contains("ALERT_DECRYPT_ERROR") || text.contains("ALERT_ACCESS_DENIED")
        {
            reason =
                "the server refused our client certificate (missing, or not signed by the CA the server trusts)"
        } else if text.contains("WRONG_VERSION_NUMBER") || text.contains("uncleanShutdown")
            || text.contains("EOF during handshake")
        {
            reason = "the server did not answer in TLS (it may serve plaintext only: a server without --tls-cert does)"
        } else {
            reason = text
        }
        return "TLS handshake with \(address) failed: \(reason)."
    }

    /// Why a server refused a client's handshake.
    static func serverSideReason(_ error: any Error) -> String {
        let text = "\(error)"
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") {
            return "the client presented no certificate; this port requires one signed by the cluster's CA (--tls-ca)"
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the client's certificate is not signed by the CA this server trusts (--tls-ca)"
        }
        if text.contains("ALERT_UNKNOWN_CA") || text.contains("ALERT_BAD_CERTIFICATE") {
            return "the client does not trust this server's certificate (its --tls-ca is another CA)"
        }
        if text.contains("uncleanShutdown") {
            return "the client closed the connection during the handshake"
        }
        return text
    }
}
