import DurableClient
import DurableObjects
import DurableWire
import Logging
import Synchronization

/// The gateways a node talks to: the ones given with `--gateway`, and with `--etcd` the live ones etcd lists. It
/// keeps the node's client of the gateways (for objects' calls to other objects) pointed at the live ones, and
/// sends each WebSocket frame to the gateway that holds the socket.
final class GatewayDirectory: Sendable {
    /// The client objects' calls go through (any gateway serves them).
    let client: DurableClient
    private let liveGateways: @Sendable () -> [String: String]
    private let credentials: RPCKey?
    private let tls: RPCClientTLS?
    private let logger: Logger
    /// One client per gateway that holds sockets, by address.
    private let sessionClients = Mutex<[String: DurableClient]>([:])
    private let refresher = Mutex<Task<Void, Never>?>(nil)

    /// - Parameters:
    ///   - configured: the `--gateway` list (may be empty when etcd lists the gateways).
    ///   - liveGateways: the gateways alive now, session → address (`[:]` without etcd).
    init(
        configured: [DurableClient.Endpoint], liveGateways: @escaping @Sendable () -> [String: String],
        credentials: RPCKey?, tls: RPCClientTLS?, logger: Logger
    ) {
        let live = liveGateways().values.sorted().compactMap { DurableClient.Endpoint($0) }
        let endpoints = live.isEmpty ? configured : live
        // With no gateway known yet (etcd lists none alive), the default gateway address until etcd lists one.
        client = DurableClient(
            endpoints: endpoints.isEmpty ? [DurableClient.Endpoint(host: "127.0.0.1", port: 7070)] : endpoints,
            credentials: credentials, tls: tls, logger: logger)
        self.liveGateways = liveGateways
        self.credentials = credentials
        self.tls = tls
        self.logger = logger
    }

    /// Keeps the client's list of gateways equal to the live ones (checked every `period`) until ``close()``.
    func follow(every period: Duration = .seconds(1)) {
        let task = Task { [client, liveGateways, logger] in
            var last: [DurableClient.Endpoint] = []
            while !Task.isCancelled {
                let live = liveGateways().values.sorted().compactMap { DurableClient.Endpoint($0) }
                if !live.isEmpty, live != last {
                    client.setEndpoints(live)
                    logger.info("gateways", metadata: ["live": "\(live.map(\.description))"])
                    last = live
                }
                try? await Task.sleep(for: period)
            }
        }
        refresher.withLock { $0 = task }
    }

    /// The hub that sends objects' socket frames to the gateways holding the sockets.
    var webSocketHub: any WebSocketHub { SessionRoutedHub(directory: self) }

    /// The client of the gateway whose session is `session`, or the shared client when that gateway is unknown
    /// (without etcd there is one gateway).
    func client(forSession session: Substring) -> DurableClient {
        guard let address = liveGateways()[String(session)], let endpoint = DurableClient.Endpoint(address) else {
            return client
        }
        return sessionClients.withLock { clients in
            if let existing = clients[address] { return existing }
            let fresh = DurableClient(
                endpoints: [endpoint], connections: 1, credentials: credentials, tls: tls, logger: logger)
            clients[address] = fresh
            return fresh
        }
    }

    /// Stops following the gateways and closes every client.
    func close() async {
        refresher.withLock { $0 }?.cancel()
        await client.close()
        for client in sessionClients.withLock({ $0.values }) { await client.close() }
    }
}

/// Sends socket frames to the gateway of each socket's session (a socket id is `<session>:<unique part>`).
private struct SessionRoutedHub: WebSocketHub {
    let directory: GatewayDirectory

    func deliver(_ frames: [WebSocketFrame]) async throws {
        var bySession: [Substring: [WebSocketFrame]] = [:]
        for frame in frames {
            bySession[frame.socketID.split(separator: ":", maxSplits: 1).first ?? "", default: []].append(frame)
        }
        for (session, frames) in bySession {
            try await RemoteWebSocketHub(client: directory.client(forSession: session)).deliver(frames)
        }
    }
}
