/// The status of a failed call: a gRPC-style code, a message, and whether retrying can help.
public struct RPCError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The status code.
    public var code: Durable_V1_Code
    /// What went wrong.
    public var message: String
    /// Whether sending the same call again may succeed.
    public var retryable: Bool
    /// Whether the callee refused the call because it is overloaded (it never ran).
    public var overloaded: Bool

    /// Creates an error.
    public init(_ code: Durable_V1_Code, _ message: String, retryable: Bool = false, overloaded: Bool = false) {
        self.code = code
        self.message = message
        self.retryable = retryable
        self.overloaded = overloaded
    }

    /// Reads an error from a reply's status.
    public init(status: Durable_V1_Status) {
        self.init(status.code, status.message, retryable: status.retryable, overloaded: status.overloaded)
    }

    /// The status to send.
    public var status: Durable_V1_Status {
        var status = Durable_V1_Status()
        status.code = code
        status.message = message
        status.retryable = retryable
        status.overloaded = overloaded
        return status
    }

    /// `CODE: message`.
    public var description: String { "\(code.name): \(message)" }

    /// The connection closed or could not be made.
    public static func unavailable(_ message: String) -> RPCError { RPCError(.unavailable, message, retryable: true) }
    /// The deadline passed.
    public static let deadlineExceeded = RPCError(.deadlineExceeded, "Deadline exceeded.", retryable: true)
    /// The call was cancelled.
    public static let cancelled = RPCError(.cancelled, "The call was cancelled.")
}

extension Durable_V1_Code {
    /// The gRPC name of the code, e.g. `RESOURCE_EXHAUSTED`.
    public var name: String {
        switch self {
        case .ok: "OK"
        case .cancelled: "CANCELLED"
        case .unknown: "UNKNOWN"
        case .invalidArgument: "INVALID_ARGUMENT"
        case .deadlineExceeded: "DEADLINE_EXCEEDED"
        case .notFound: "NOT_FOUND"
        case .alreadyExists: "ALREADY_EXISTS"
        case .permissionDenied: "PERMISSION_DENIED"
        case .resourceExhausted: "RESOURCE_EXHAUSTED"
        case .failedPrecondition: "FAILED_PRECONDITION"
        case .aborted: "ABORTED"
        case .outOfRange: "OUT_OF_RANGE"
        case .unimplemented: "UNIMPLEMENTED"
        case .internal: "INTERNAL"
        case .unavailable: "UNAVAILABLE"
        case .dataLoss: "DATA_LOSS"
        case .unauthenticated: "UNAUTHENTICATED"
        case .UNRECOGNIZED(let value): "CODE_\(value)"
        }
    }
}
