/// What a client asked of one register (one durable object holding an optional `Int`).
public enum RegisterOperation: Hashable, Sendable, Codable {
    /// Read the current value.
    case read
    /// Replace the value.
    case write(Int)
    /// Replace the value with `new` only if it currently equals `expected`; `expected == nil` means "register is
    /// unset".
    case compareAndSet(expected: Int?, new: Int)
}

/// How an operation ended, as the client saw it.
public enum RegisterOutcome: Hashable, Sendable, Codable {
    /// The read returned this value (`nil` = unset).
    case read(Int?)
    /// The write was acknowledged.
    case written
    /// The compare-and-set was acknowledged, with whether it swapped.
    case compareAndSet(Bool)
    /// The operation definitely did not take effect (for example it was refused before running).
    case failed
    /// The operation may or may not have taken effect (timeout, connection lost, crash). If it did, it took effect
    /// at some time after its invocation, possibly after the end of the history.
    case unknown
}

/// One operation of a history: what a client asked of a register, when, and how it ended.
public struct HistoryEntry: Hashable, Sendable, Codable {
    /// Which register (object) the operation addressed.
    public var key: String
    /// Which client issued it; used only in explanations.
    public var client: Int
    /// What was asked.
    public var operation: RegisterOperation
    /// When the client sent it, in nanoseconds of any monotonic clock shared by all clients.
    public var invoked: UInt64
    /// When the client saw the answer; `nil` for `.unknown` outcomes (ignored for them if set) and allowed for
    /// `.failed` ones.
    public var completed: UInt64?
    /// How it ended.
    public var outcome: RegisterOutcome

    /// Creates an entry.
    public init(
        key: String,
        client: Int,
        operation: RegisterOperation,
        invoked: UInt64,
        completed: UInt64?,
        outcome: RegisterOutcome
    ) {
        self.key = key
        self.client = client
        self.operation = operation
        self.invoked = invoked
        self.completed = completed
        self.outcome = outcome
    }
}

extension HistoryEntry {
    /// A one-line rendering for explanations, e.g. `read -> 3 by client 2 [100, 250]`.
    var summary: String {
        let call: String
        switch operation {
        case .read: call = "read"
        case .write(let value): call = "write(\(value))"
        case .compareAndSet(let expected, let new): call = "cas(\(render(expected)) -> \(new))"
        }
        let result: String
        switch outcome {
        case .read(let value): result = " -> \(render(value))"
        case .written: result = " -> ok"
        case .compareAndSet(let swapped): result = " -> \(swapped)"
        case .failed: result = " -> failed"
        case .unknown: result = " -> unknown"
        }
        let end = outcome == .unknown ? "?" : completed.map(String.init) ?? "?"
        return "\(call)\(result) by client \(client) [\(invoked), \(end)]"
    }
}

/// Renders a register value, spelling out the unset state.
func render(_ value: Int?) -> String {
    value.map(String.init) ?? "unset"
}
