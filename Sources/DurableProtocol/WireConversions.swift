import DurableObjects
import DurableWire
import Foundation
import HTTPTypes

extension RPCError {
    /// The wire status of a runtime error: same code, message and flags.
    public init(_ error: DurableObjectError) {
        self.init(
            Durable_V1_Code(name: error.code.name), error.message, retryable: error.retryable,
            overloaded: error.overloaded)
    }

    /// The wire status of any error thrown while serving a call.
    public init(serving error: any Error) {
        switch error {
        case let error as RPCError: self = error
        case let error as DurableObjectError: self.init(error)
        case is CancellationError: self = .cancelled
        default: self.init(.internal, "\(error)")
        }
    }
}

extension DurableObjectError {
    /// The runtime error a wire status stands for.
    public init(_ error: RPCError) {
        self.init(
            DurableObjectError.Code(wireName: error.code.name), error.message, retryable: error.retryable,
            overloaded: error.overloaded)
    }
}

extension DurableObjectError.Code {
    /// The runtime code of a wire code's name: the same name, whatever the code.
    init(wireName: String) {
        self = Self.all.first { $0.name == wireName } ?? Self(wireName)
    }
}

extension Durable_V1_Code {
    /// The wire code named `name` (`INTERNAL` for a name the protocol does not define).
    public init(name: String) {
        switch name {
        case "CANCELLED": self = .cancelled
        case "UNKNOWN": self = .unknown
        case "INVALID_ARGUMENT": self = .invalidArgument
        case "DEADLINE_EXCEEDED": self = .deadlineExceeded
        case "NOT_FOUND": self = .notFound
        case "ALREADY_EXISTS": self = .alreadyExists
        case "PERMISSION_DENIED": self = .permissionDenied
        case "RESOURCE_EXHAUSTED": self = .resourceExhausted
        case "FAILED_PRECONDITION": self = .failedPrecondition
        case "ABORTED": self = .aborted
        case "OUT_OF_RANGE": self = .outOfRange
        case "UNIMPLEMENTED": self = .unimplemented
        case "UNAVAILABLE": self = .unavailable
        case "DATA_LOSS": self = .dataLoss
        case "UNAUTHENTICATED": self = .unauthenticated
        default: self = .internal
        }
    }
}

extension Request {
    /// The request a wire message carries.
    ///
    /// - Throws: `INVALID_ARGUMENT` for a method or header name HTTP does not allow.
    public init(wire: Durable_V1_HttpRequest) throws {
        guard let method = HTTPRequest.Method(wire.method.isEmpty ? "GET" : wire.method) else {
            throw RPCError(.invalidArgument, "Invalid HTTP method '\(wire.method)'.")
        }
        var headers = HTTPFields()
        for header in wire.headers {
            guard let name = HTTPField.Name(header.name) else {
                throw RPCError(.invalidArgument, "Invalid HTTP header name '\(header.name)'.")
            }
            headers.append(HTTPField(name: name, value: header.value))
        }
        self.init(
            url: wire.url.isEmpty ? "/" : wire.url, method: method, headers: headers,
            body: Body(bytes: Array(wire.body)))
    }

    /// The wire message for this request.
    public var wire: Durable_V1_HttpRequest {
        var wire = Durable_V1_HttpRequest()
        wire.method = method.rawValue
        wire.url = url
        wire.headers = headers.wire
        wire.body = Data(body)
        return wire
    }
}

extension HTTPFields {
    /// The headers as wire messages, in order.
    var wire: [Durable_V1_Header] {
        map { field in
            Durable_V1_Header.with {
                $0.name = field.name.rawName
                $0.value = field.value
            }
        }
    }
}

extension Response {
    /// The response a wire message carries.
    public init(wire: Durable_V1_HttpResponse) {
        var headers = HTTPFields()
        for header in wire.headers {
            if let name = HTTPField.Name(header.name) { headers.append(HTTPField(name: name, value: header.value)) }
        }
        self.init(
            head: HTTPResponse(status: HTTPResponse.Status(code: Int(wire.status)), headerFields: headers),
            body: Array(wire.body))
    }

    /// The wire message for this response.
    public var wire: Durable_V1_HttpResponse {
        var wire = Durable_V1_HttpResponse()
        wire.status = UInt32(status.code)
        wire.headers = headers.wire
        wire.body = Data(body)
        return wire
    }
}

/// The method names of the protocol.
public enum Methods {
    /// Deliver a request to an object.
    public static let invoke = "durable.v1.Objects/Invoke"
    /// Look up a binding's namespace and id key.
    public static let resolveBinding = "durable.v1.Objects/ResolveBinding"
    /// Is the node serving?
    public static let health = "durable.v1.Node/Health"
    /// The node's counters.
    public static let stats = "durable.v1.Node/Stats"
    /// Set placement epochs of slots.
    public static let assignSlots = "durable.v1.Node/AssignSlots"
    /// Serve the registry's namespaces and bindings.
    public static let defineNamespaces = "durable.v1.Node/DefineNamespaces"
    /// Delete namespaces and their data.
    public static let dropNamespaces = "durable.v1.Node/DropNamespaces"
    /// A node joins the cluster (gateway).
    public static let registerNode = "durable.v1.Gateway/RegisterNode"
    /// Publish an app configuration (gateway).
    public static let publish = "durable.v1.Gateway/Publish"
    /// A node sends its objects' socket frames to the gateway.
    public static let webSocketSend = "durable.v1.Gateway/WebSocketSend"
    /// The gateway hands a socket event to the object's node.
    public static let webSocketEvent = "durable.v1.Objects/WebSocketEvent"
    /// Stream the log lines and uncaught errors of a node's objects (streaming).
    public static let nodeTail = "durable.v1.Node/Tail"
    /// Stream the log lines and uncaught errors of the cluster's objects (gateway; admin token; streaming).
    public static let tail = "durable.v1.Admin/Tail"
}

extension WebSocketEvent {
    /// The event a wire request carries.
    ///
    /// - Throws: `INVALID_ARGUMENT` when it carries none.
    public init(wire: Durable_V1_WebSocketEventRequest) throws {
        switch wire.event {
        case .text(let text): self = .message(.text(text))
        case .binary(let bytes): self = .message(.binary(Array(bytes)))
        case .close(let close): self = .close(code: Int(close.code), reason: close.reason, wasClean: close.wasClean)
        case .error(let error): self = .error(error)
        case nil: throw RPCError(.invalidArgument, "A WebSocketEvent carries no event.")
        }
    }

    /// Puts the event on a wire request.
    public func fill(_ wire: inout Durable_V1_WebSocketEventRequest) {
        switch self {
        case .message(.text(let text)): wire.text = text
        case .message(.binary(let bytes)): wire.binary = Data(bytes)
        case .close(let code, let reason, let wasClean):
            wire.close = .with {
                $0.code = Int32(clamping: code)
                $0.reason = reason
                $0.wasClean = wasClean
            }
        case .error(let error): wire.error = error
        }
    }
}

extension WebSocketFrame {
    /// The frame a wire message carries, or `nil` when it carries none.
    public init?(wire: Durable_V1_WebSocketOutgoing) {
        switch wire.frame {
        case .text(let text): self.init(socketID: wire.socketID, kind: .message(.text(text)))
        case .binary(let bytes): self.init(socketID: wire.socketID, kind: .message(.binary(Array(bytes))))
        case .close(let close):
            self.init(socketID: wire.socketID, kind: .close(code: Int(close.code), reason: close.reason))
        case nil: return nil
        }
    }

    /// The frame as a wire message.
    public var wire: Durable_V1_WebSocketOutgoing {
        .with { wire in
            wire.socketID = socketID
            switch kind {
            case .message(.text(let text)): wire.text = text
            case .message(.binary(let bytes)): wire.binary = Data(bytes)
            case .close(let code, let reason):
                wire.close = .with {
                    $0.code = Int32(clamping: code)
                    $0.reason = reason
                }
            }
        }
    }
}
