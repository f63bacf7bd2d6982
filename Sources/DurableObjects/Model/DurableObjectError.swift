/// An error of the durable-object runtime, with a status code modelled on gRPC's and the flags a caller needs
/// to decide what to do next.
///
/// Messages follow the Durable Objects platform word for word where <doc:Semantics> lists them, so that code and
/// tests ported from there see the texts they expect.
public struct DurableObjectError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The status code. New codes may be added; switch with a `default` branch.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name, as in gRPC.
        public let name: String

        /// The code named `name`, as the wire protocol names it; a name not listed below keeps its own name (no code
        /// is folded into another on the way).
        public init(_ name: String) { self.name = name }

        /// The caller passed something malformed: a bad id, an oversized key, an invalid option.
        public static let invalidArgument = Code("INVALID_ARGUMENT")
        /// A named thing (a binding, a class, an object) does not exist.
        public static let notFound = Code("NOT_FOUND")
        /// The call is not allowed in the current state (a stale placement epoch, a superseded instance).
        public static let failedPrecondition = Code("FAILED_PRECONDITION")
        /// A bound was hit: the object's queue is full (see ``DurableObjectError/overloaded``).
        public static let resourceExhausted = Code("RESOURCE_EXHAUSTED")
        /// The object cannot be reached now; retrying later may work.
        public static let unavailable = Code("UNAVAILABLE")
        /// The deadline passed before the call finished.
        public static let deadlineExceeded = Code("DEADLINE_EXCEEDED")
        /// The caller is not authenticated.
        public static let unauthenticated = Code("UNAUTHENTICATED")
        /// Something failed inside the runtime or the object (a storage write, an uncaught error).
        public static let `internal` = Code("INTERNAL")
        /// The call was cancelled, by its caller or by a shutdown.
        public static let cancelled = Code("CANCELLED")
        /// An error that carries no better code.
        public static let unknown = Code("UNKNOWN")
        /// What the call would create exists already.
        public static let alreadyExists = Code("ALREADY_EXISTS")
        /// The caller is authenticated but its key may not make this call (an API token calling an admin method).
        public static let permissionDenied = Code("PERMISSION_DENIED")
        /// The call was aborted by a conflict; retrying the whole operation may work.
        public static let aborted = Code("ABORTED")
        /// A value was past the range it may take.
        public static let outOfRange = Code("OUT_OF_RANGE")
        /// The method does not exist, or the server does not serve it.
        public static let unimplemented = Code("UNIMPLEMENTED")
        /// Data was lost or corrupted.
        public static let dataLoss = Code("DATA_LOSS")

        /// Every code the wire protocol defines, besides OK.
        public static let all: [Code] = [
            .cancelled, .unknown, .invalidArgument, .deadlineExceeded, .notFound, .alreadyExists, .permissionDenied,
            .resourceExhausted, .failedPrecondition, .aborted, .outOfRange, .unimplemented, .internal, .unavailable,
            .dataLoss, .unauthenticated,
        ]

        /// The code's name.
        public var description: String { name }
    }

    /// The status code.
    public var code: Code
    /// What went wrong, in words a person can act on.
    public var message: String
    /// Whether the same call may succeed if it is sent again.
    public var retryable: Bool
    /// Whether the object refused the call because it is overloaded (never executed).
    public var overloaded: Bool
    /// Whether the error came back from a call to an object (raised by the object, its queue, its node or the
    /// gateway on the way) rather than on the caller's side (an unknown binding, a malformed id). Set by
    /// ``DurableObjectStub/fetch(_:)``.
    public var remote: Bool

    /// Creates an error.
    public init(
        _ code: Code, _ message: String, retryable: Bool = false, overloaded: Bool = false, remote: Bool = false
    ) {
        self.code = code
        self.message = message
        self.retryable = retryable
        self.overloaded = overloaded
        self.remote = remote
    }

    /// The message.
    public var description: String { message }

    /// Two errors are equal when they say the same: ``remote`` tells where an error was seen, not what it is.
    public static func == (lhs: DurableObjectError, rhs: DurableObjectError) -> Bool {
        lhs.code == rhs.code && lhs.message == rhs.message && lhs.retryable == rhs.retryable
            && lhs.overloaded == rhs.overloaded
    }

    /// Hashes what `==` compares.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
        hasher.combine(message)
        hasher.combine(retryable)
        hasher.combine(overloaded)
    }
}

extension DurableObjectError {
    /// An invalid argument with `message`.
    static func invalid(_ message: String) -> DurableObjectError { DurableObjectError(.invalidArgument, message) }

    /// The queue-count bound was hit.
    public static let tooManyRequestsQueued = DurableObjectError(
        .resourceExhausted, "Durable Object is overloaded. Too many requests queued.", retryable: true,
        overloaded: true)
    /// The queued-bytes bound was hit.
    public static let tooMuchDataQueued = DurableObjectError(
        .resourceExhausted, "Durable Object is overloaded. Too much data queued.", retryable: true, overloaded: true)
    /// The queue-age bound was hit.
    public static let queuedTooLong = DurableObjectError(
        .resourceExhausted, "Durable Object is overloaded. Requests queued for too long.", retryable: true,
        overloaded: true)
    /// A storage write failed; the object was reset.
    public static let storageWriteFailed = DurableObjectError(
        .internal, "Internal error in Durable Object storage write caused object to be reset.", retryable: true)
    /// The instance was superseded (evicted, reset, or replaced elsewhere) and touched storage.
    public static let instanceInactive = DurableObjectError(
        .failedPrecondition,
        "Connection closed: this Durable Object instance is no longer active. Reconnect or retry the request.",
        retryable: true)
    /// The instance was superseded because its class changed.
    public static let codeUpdated = DurableObjectError(
        .failedPrecondition, "Durable Object reset because its code was updated.", retryable: true)
    /// `blockConcurrencyWhile` ran past its time limit.
    public static let blockConcurrencyTimedOut = DurableObjectError(
        .internal,
        "A call to blockConcurrencyWhile() in a Durable Object waited for too long. The call was canceled and the Durable Object was reset.",
        retryable: true)
}
