import DurableObjects
import Foundation
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// The client's side of an open socket, as the gateway writes to it.
public final class WebSocketClientConnection: WebSocketClientWriter {
    private let outbound: WebSocketOutboundWriter
    private let logger: Logger

    init(outbound: WebSocketOutboundWriter, logger: Logger) {
        self.outbound = outbound
        self.logger = logger
    }

    /// Writes one frame from the object.
    public func write(_ kind: DurableObjects.WebSocketFrame.Kind) async {
        do {
            switch kind {
            case .message(.text(let text)): try await outbound.write(.text(text))
            case .message(.binary(let bytes)): try await outbound.write(.binary(ByteBuffer(bytes: bytes)))
            case .close(let code, let reason):
                try await outbound.close(WebSocketErrorCode(codeNumber: code), reason: reason.isEmpty ? nil : reason)
            }
        } catch {
            logger.debug("could not write to a client's WebSocket: \(error)")
        }
    }
}

/// The WebSocket side of ``HTTPBridge``: an upgrade request runs the worker like any request (with the id the
/// socket will have in `X-Durable-WebSocket-Id`); when an object accepts it (`101`), the connection is upgraded
/// and handed to the relay; otherwise the worker's answer is sent as a plain HTTP response.
final class WebSocketUpgrades: Sendable {
    let relay: any WebSocketRelay
    let maximumMessageSize: Int
    let logger: Logger
    /// Answers of upgrade requests the worker did not accept, by connection, for the HTTP responder to send.
    let refused = Mutex<[ObjectIdentifier: DurableObjects.Response]>([:])

    init(relay: any WebSocketRelay, maximumMessageSize: Int, logger: Logger) {
        self.relay = relay
        self.maximumMessageSize = maximumMessageSize
        self.logger = logger
    }

    /// The largest frame the server reads: a message a little over the limit still arrives whole, so that it can
    /// be refused with a close that names the limit.
    var maximumFrameSize: Int { min(maximumMessageSize * 4, 64 * 1024 * 1024) }

    func shouldUpgrade(
        head: HTTPRequest, channel: any Channel,
        answer: @Sendable (DurableObjects.Request) async -> DurableObjects.Response
    ) async -> ShouldUpgradeResult<WebSocketDataHandler<HTTP1WebSocketUpgradeChannel.Context>> {
        let socketID = relay.makeSocketID()
        var head = head
        head.headerFields[WebSocketLimits.socketIDHeader] = socketID
        let response = await answer(
            DurableObjects.Request(head: HTTPBridge.forwarded(head, remote: channel.remoteAddress)))
        guard let accepted = response.acceptedWebSocket, accepted.socketID == socketID else {
            refused.withLock { $0[ObjectIdentifier(channel)] = response }
            return .dontUpgrade
        }
        logger.debug("WebSocket accepted", metadata: ["socket": "\(socketID)", "object": "\(accepted.object)"])
        let observedClose = await ObservedClose.observe(channel)
        let relay = self.relay
        let logger = self.logger
        let maximumMessageSize = self.maximumMessageSize
        let maximumFrameSize = self.maximumFrameSize
        return .upgrade([:]) { inbound, outbound, _ in
            let client = WebSocketClientConnection(outbound: outbound, logger: logger)
            await relay.opened(socketID: socketID, object: accepted.object, client: client)
            var iterator = inbound.messages(maxSize: maximumFrameSize).makeAsyncIterator()
            do {
                while let message = try await iterator.next() {
                    let event: DurableObjects.WebSocketMessage
                    switch message {
                    case .text(let text): event = .text(text)
                    case .binary(let buffer): event = .binary(Array(buffer: buffer))
                    }
                    guard event.byteCount <= maximumMessageSize else {
                        let reason =
                            "Message is too large: \(event.byteCount) bytes; the limit is \(maximumMessageSize) bytes."
                        try? await outbound.close(.messageTooLarge, reason: reason)
                        await relay.clientEvent(
                            socketID: socketID, event: .close(code: 1009, reason: reason, wasClean: false))
                        return
                    }
                    await relay.clientEvent(socketID: socketID, event: .message(event))
                }
                // The inbound stream ends at the client's close frame, or when the connection ends without one.
                let event: DurableObjects.WebSocketEvent
                if let frame = observedClose?.closeFrame {
                    event = .close(code: frame.code ?? 1005, reason: frame.reason, wasClean: true)
                } else if observedClose == nil {
                    event = .close(code: 1005, reason: "", wasClean: true)
                } else {
                    event = .close(code: 1006, reason: "", wasClean: false)
                }
                await relay.clientEvent(socketID: socketID, event: event)
            } catch {
                await relay.clientEvent(socketID: socketID, event: .error("\(error)"))
            }
        }
    }

    /// The stored answer for a refused upgrade on `channel`, if any.
    func takeRefusal(for channel: any Channel) -> DurableObjects.Response? {
        refused.withLock { $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }
}
