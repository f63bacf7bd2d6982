import DurableObjects

/// The counter of the Durable Objects documentation: `/increment` and `/decrement` change a stored value,
/// `/` reads it; any other path is `404 Not found`.
public actor Counter: DurableObject {
    /// The object's state.
    public nonisolated let state: DurableObjectState

    /// Creates the instance.
    public init(state: DurableObjectState, env: Environment) {
        self.state = state
    }

    /// Answers with the current value, after changing it for `/increment` and `/decrement`.
    public func fetch(_ request: Request) async throws -> Response {
        var value = try await state.storage.get("value", as: Int.self) ?? 0
        switch request.path {
        case "/increment":
            value += 1
            try state.storage.put("value", value)
            state.logger.debug("counter changed", metadata: ["value": "\(value)"])
        case "/decrement":
            value -= 1
            try state.storage.put("value", value)
            state.logger.debug("counter changed", metadata: ["value": "\(value)"])
        case "/":
            break
        default:
            return Response("Not found", status: .notFound)
        }
        return Response("\(value)")
    }
}
