/// The application's worker: the handler that receives every HTTP request the gateway accepts, with the
/// environment of its bindings (`env.namespace("COUNTER")`), and usually forwards it to an object.
///
/// ```swift
/// let worker = Worker { request, env in
///     let counters = try env.namespace("COUNTER")
///     return try await counters.get(counters.idFromName("A")).fetch(request)
/// }
/// ```
public struct Worker: Sendable {
    /// Answers one request.
    public let fetch: @Sendable (Request, Environment) async throws -> Response

    /// Creates a worker from its `fetch` handler.
    public init(fetch: @escaping @Sendable (Request, Environment) async throws -> Response) {
        self.fetch = fetch
    }
}

/// An application: the object classes it exports, the worker that receives its HTTP requests, and its
/// configuration (`durable.toml`).
///
/// An app's executable hands one of these to `DurableApp`'s `main()`, which gives it every `durable` subcommand
/// (`dev`, `gateway`, `node`, `publish`, …).
public struct DurableApplication: Sendable {
    /// The error an app without a worker fails with when it is asked to serve HTTP.
    public static let noEventHandlers = "No event handlers were registered. This script does nothing."

    /// The object classes the app exports (what `new_classes` migrations may name).
    public var classes: [DurableObjectClass]
    /// The worker handler, or `nil` when the app registers none.
    public var worker: Worker?
    /// The text of the app's `durable.toml`, used when no `--config` is given and the working directory has no
    /// `durable.toml`.
    public var configuration: String?

    /// Creates an app.
    public init(classes: [DurableObjectClass], configuration: String? = nil, worker: Worker? = nil) {
        self.classes = classes
        self.configuration = configuration
        self.worker = worker
    }

    /// Creates an app whose worker is `fetch`.
    public init(
        classes: [DurableObjectClass], configuration: String? = nil,
        fetch: @escaping @Sendable (Request, Environment) async throws -> Response
    ) {
        self.init(classes: classes, configuration: configuration, worker: Worker(fetch: fetch))
    }

    /// The names of the exported classes.
    public var classNames: Set<String> { Set(classes.map(\.name)) }
}
