import DurableTracing
import HTTPTypes
import Tracing

/// Carries calls to objects: in process (``ObjectRuntime``), or over the network to a node or a gateway.
public protocol ObjectTransport: Sendable {
    /// Delivers `request` to the object `id` of the namespace `namespaceID` and returns its response.
    func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response
}

/// The objects of one class under one binding: makes ids and stubs.
public struct DurableObjectNamespace: Sendable {
    /// The namespace's id in the registry (it names the column family of its objects).
    public let namespaceID: String
    /// The class that implements the objects.
    public let className: String
    let key: NamespaceKey
    let transport: any ObjectTransport

    /// Creates a namespace handle (the runtime and the gateway make these).
    public init(namespaceID: String, className: String, key: NamespaceKey, transport: any ObjectTransport) {
        self.namespaceID = namespaceID
        self.className = className
        self.key = key
        self.transport = transport
    }

    /// The id of the object called `name`: the same name always gives the same id in this namespace, and a
    /// different one in any other.
    public func idFromName(_ name: String) -> DurableObjectId { key.id(forName: name) }

    /// A new random id, never equal to a named one.
    public func newUniqueId() -> DurableObjectId { key.newUniqueID() }

    /// Parses an id from its 64 hex digits.
    ///
    /// - Throws: `Invalid Durable Object ID: must be 64 hex digits`, or
    ///   `Durable Object ID is not valid for this namespace.` when it was made by another namespace.
    public func idFromString(_ hex: String) throws -> DurableObjectId { try key.id(fromString: hex) }

    /// A stub for the object `id`: no round trip; the object is created by its first request.
    public func get(_ id: DurableObjectId) -> DurableObjectStub {
        DurableObjectStub(id: id, namespace: self)
    }

    /// A stub for the object called `name`.
    public func getByName(_ name: String) -> DurableObjectStub { get(idFromName(name)) }
}

/// A handle on one object. Cheap to make and to copy; every call goes to the single live instance.
public struct DurableObjectStub: Sendable {
    /// The object's id.
    public let id: DurableObjectId
    /// The namespace the object belongs to.
    public let namespace: DurableObjectNamespace

    /// The name the id was derived from, if any.
    public var name: String? { id.name }

    /// Sends `request` to the object and returns its response. The URL's host does not matter.
    ///
    /// Called from inside another object, the request leaves only once that object's earlier writes are durable
    /// (the output gate).
    ///
    /// - Throws: what the call answered; a ``DurableObjectError`` from the call is marked
    ///   ``DurableObjectError/remote``.
    public func fetch(_ request: Request) async throws -> Response {
        if let caller = ObjectContext.current { try await caller.waitUntilDurable(caller.gateSequence) }
        guard CallTracing.recordsThisCall else { return try await send(request) }
        return try await CallTracing.tracer.withSpan(SpanNames.objectCall, ofKind: .client) { span in
            span.attributes[SpanAttributeKeys.namespace] = namespace.namespaceID
            span.attributes[SpanAttributeKeys.className] = namespace.className
            span.attributes[SpanAttributeKeys.objectID] = id.hexString
            do {
                return try await send(request)
            } catch let error as DurableObjectError {
                span.attributes[SpanAttributeKeys.statusCode] = error.code.description
                throw error
            }
        }
    }

    private func send(_ request: Request) async throws -> Response {
        do {
            return try await namespace.transport.invoke(namespaceID: namespace.namespaceID, id: id, request: request)
        } catch var error as DurableObjectError {
            error.remote = true
            throw error
        }
    }

    /// Sends a request built from its parts.
    public func fetch(_ url: String, method: Request.Method = .get, headers: Request.Fields = [:], body: Body = .empty)
        async throws -> Response
    {
        try await fetch(Request(url: url, method: method, headers: headers, body: body))
    }
}

/// The bindings an object or a worker handler sees: binding name → namespace, plus plain variables.
public struct Environment: Sendable {
    /// The namespaces by binding name.
    public var namespaces: [String: DurableObjectNamespace]
    /// Plain text variables.
    public var vars: [String: String]

    /// Creates an environment.
    public init(namespaces: [String: DurableObjectNamespace] = [:], vars: [String: String] = [:]) {
        self.namespaces = namespaces
        self.vars = vars
    }

    /// The namespace bound as `binding` (`env["COUNTER"]`), or `nil`.
    public subscript(binding: String) -> DurableObjectNamespace? { namespaces[binding] }

    /// The namespace bound as `binding`.
    ///
    /// - Throws: ``DurableObjectError/Code-swift.struct/notFound`` naming the binding when there is none.
    public func namespace(_ binding: String) throws -> DurableObjectNamespace {
        guard let namespace = namespaces[binding] else {
            let known = namespaces.keys.sorted().joined(separator: ", ")
            throw DurableObjectError(
                .notFound, "No Durable Object binding named '\(binding)' (bindings: \(known.isEmpty ? "none" : known))."
            )
        }
        return namespace
    }
}

/// The object whose event the current task is running, so that stubs can apply its output gate.
enum ObjectContext {
    @TaskLocal static var current: StorageEngine?
}

extension Request {
    /// The HTTP method type.
    public typealias Method = HTTPRequest.Method
    /// The header fields type.
    public typealias Fields = HTTPFields
}
