import DurableObjects
import DurableProtocol
import DurableWire

/// Sends objects' socket frames to a gateway over RPC (what a node in a cluster uses).
public struct RemoteWebSocketHub: WebSocketHub {
    let client: DurableClient

    /// Sends through `client` (connected to the gateway).
    public init(client: DurableClient) { self.client = client }

    /// Delivers the frames in one call.
    public func deliver(_ frames: [WebSocketFrame]) async throws {
        let _: Durable_V1_WebSocketSendResponse = try await client.call(
            Methods.webSocketSend, Durable_V1_WebSocketSendRequest.with { $0.frames = frames.map(\.wire) })
    }
}
