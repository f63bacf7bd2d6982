import CoreMetrics

/// How a call to an object ended, as the metrics label it.
public enum CallOutcome: Int, CaseIterable, Sendable {
    /// The object answered (whatever the HTTP status of its response).
    case ok
    /// The object or the runtime failed the call.
    case error
    /// The object's queue refused the call; it never ran.
    case overloaded
    /// The caller's deadline passed first.
    case deadlineExceeded
    /// The object could not be reached (its node is down or the runtime is stopping).
    case unavailable
    /// The caller gave up.
    case canceled

    /// The value of the `outcome` label.
    public var label: String {
        switch self {
        case .ok: "ok"
        case .error: "error"
        case .overloaded: "overloaded"
        case .deadlineExceeded: "deadline_exceeded"
        case .unavailable: "unavailable"
        case .canceled: "canceled"
        }
    }

    /// The outcome of a call that threw `error`.
    public init(_ error: any Error) {
        switch error {
        case is CancellationError:
            self = .canceled
        case let error as DurableObjectError:
            self.init(code: error.code, overloaded: error.overloaded)
        default:
            self = .error
        }
    }

    /// The outcome of a call that failed with status `code`.
    public init(code: DurableObjectError.Code, overloaded: Bool) {
        if overloaded {
            self = .overloaded
        } else if code == .deadlineExceeded {
            self = .deadlineExceeded
        } else if code == .unavailable {
            self = .unavailable
        } else {
            self = .error
        }
    }
}

/// The count and latency of one kind of call, per ``CallOutcome``: a counter `<calls>` and a histogram
/// `<duration>` (seconds), both labelled with the given dimensions plus `outcome`.
///
/// Every metric object is made when this is made, so recording a call is an array index and the handlers' own
/// atomic or locked update.
public struct CallMetrics: Sendable {
    private let counts: [Counter]
    private let durations: [CoreMetrics.Timer]

    /// Makes the counter `calls` and the histogram `duration` for each outcome.
    public init(calls: String, duration: String, dimensions: [(String, String)], factory: any MetricsFactory) {
        counts = CallOutcome.allCases.map {
            Counter(label: calls, dimensions: dimensions + [("outcome", $0.label)], factory: factory)
        }
        durations = CallOutcome.allCases.map {
            CoreMetrics.Timer(label: duration, dimensions: dimensions + [("outcome", $0.label)], factory: factory)
        }
    }

    /// Records a call that began at `start` and ended with `outcome`.
    public func record(_ outcome: CallOutcome, since start: ContinuousClock.Instant) {
        let elapsed = (ContinuousClock.now - start).components
        counts[outcome.rawValue].increment()
        durations[outcome.rawValue].recordNanoseconds(
            elapsed.seconds * 1_000_000_000 + elapsed.attoseconds / 1_000_000_000)
    }
}

/// An ``ObjectTransport`` that counts and times the calls objects make to other objects (subrequests) before
/// handing them to the transport that carries them.
struct MeteredObjectTransport: ObjectTransport {
    let base: any ObjectTransport
    let metrics: CallMetrics

    func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response {
        let started = ContinuousClock.now
        do {
            let response = try await base.invoke(namespaceID: namespaceID, id: id, request: request)
            metrics.record(.ok, since: started)
            return response
        } catch {
            metrics.record(CallOutcome(error), since: started)
            throw error
        }
    }
}
