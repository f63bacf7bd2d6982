import DurableObjects
import HTTPTypes

/// The first example of the Durable Objects documentation: stores the request body under the caller's IP
/// address (the `CF-Connecting-IP` header the gateway sets) and answers `<ip> stored <body>`.
public actor DurableObjectExample: DurableObject {
    /// The object's state.
    public nonisolated let state: DurableObjectState

    /// Creates the instance.
    public init(state: DurableObjectState, env: Environment) {
        self.state = state
    }

    /// Stores the body under the caller's IP and says so.
    public func fetch(_ request: Request) async throws -> Response {
        let ip = request.headers[HTTPField.Name("CF-Connecting-IP")!] ?? "unknown"
        let data = request.text()
        try state.storage.put(ip, data)
        return Response("\(ip) stored \(data)")
    }
}
