/// The names of the spans a call makes on its way, one per hop (the Operations article lists their attributes).
public enum SpanNames {
    /// The HTTP bridge answering one request (a server span, named after the method: `HTTP GET`).
    public static func http(method: String) -> String { "HTTP \(method)" }
    /// A stub's call to an object (a worker's or another object's call; a client span).
    public static let objectCall = "durable.object.call"
    /// The gateway routing an invocation to the node that owns the object.
    public static let gatewayRoute = "durable.gateway.route"
    /// A storage node serving an invocation (a server span).
    public static let nodeInvoke = "durable.node.invoke"
    /// The call waiting in the object's bounded inbound queue until its turn starts.
    public static let queueWait = "durable.object.queue_wait"
    /// The object's turn: its handler running on the object's executor.
    public static let turn = "durable.object.turn"
    /// The output gate: waiting until the writes the answer depends on are durable (the flush's group commit).
    public static let storageFlush = "durable.storage.flush"
}

/// The attribute keys the spans carry.
public enum SpanAttributeKeys {
    /// The RPC method (`durable.v1.Node/Invoke`).
    public static let rpcMethod = "rpc.method"
    /// The HTTP method.
    public static let httpMethod = "http.request.method"
    /// The request's path.
    public static let urlPath = "url.path"
    /// The HTTP response status.
    public static let httpStatus = "http.response.status_code"
    /// The object's namespace id.
    public static let namespace = "durable.namespace"
    /// The object's class.
    public static let className = "durable.class"
    /// The object's id (hex).
    public static let objectID = "durable.object_id"
    /// The storage node serving the call.
    public static let node = "durable.node"
    /// The status code of a failed call (`UNAVAILABLE`, `RESOURCE_EXHAUSTED`, ...).
    public static let statusCode = "durable.status_code"
    /// Whether the answer had to wait for a flush (false: its writes were durable already).
    public static let flushWaited = "durable.flush.waited"
}
