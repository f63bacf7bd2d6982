/// The verdict on a history.
public enum LinearizabilityResult: Hashable, Sendable {
    /// Every key's operations can be ordered so that each takes effect between its invocation and completion and
    /// the order obeys the register's sequential specification.
    case linearizable
    /// The operations on `key` admit no such order; `explanation` names the operation that could not be placed.
    case notLinearizable(key: String, explanation: String)
    /// The search on `key` ran out of its step budget before reaching a verdict.
    case undecided(key: String, reason: String)
}

/// What the checker did for one key, for reporting.
public struct KeyReport: Hashable, Sendable {
    /// The register.
    public var key: String
    /// How many operations took part in the search: the key's entries minus `.failed` ones and reads whose outcome
    /// is unknown, which cannot have had an observable effect.
    public var operations: Int
    /// How many of those operations had an `.unknown` outcome.
    public var unknown: Int
    /// How many search steps were spent on the key.
    public var steps: Int
    /// The verdict for the key alone.
    public var result: LinearizabilityResult

    /// Creates a report.
    public init(key: String, operations: Int, unknown: Int, steps: Int, result: LinearizabilityResult) {
        self.key = key
        self.operations = operations
        self.unknown = unknown
        self.steps = steps
        self.result = result
    }
}

/// Decides whether a history of register operations is linearizable.
///
/// The search is Wing and Gong's, with Lowe's memoisation of (set of linearized operations, register value): a
/// depth-first walk over the history's call and return events that linearizes pending operations one at a time and
/// backtracks when it reaches the return of an operation it has not placed. Keys are checked one at a time, which
/// is sound because linearizability is compositional, and keeps each search small.
///
/// An operation whose outcome is `.unknown` may be placed anywhere after its invocation or not at all; a `.failed`
/// one is ignored.
///
/// Two reductions keep the search small without changing any verdict: an operation that leaves the register as it
/// is (a read, a compare-and-set that did not swap) is placed as soon as it fits, without branching, and an
/// operation with an unknown outcome is placed only right before a pending operation that observes its effect.
/// Histories with a few thousand operations per key, eight concurrent clients and dozens of unknown outcomes take
/// well under a second; a budget of 5 million steps is roughly a second of work.
public struct LinearizabilityChecker: Sendable {
    /// The value every register holds before the history begins.
    public var initialValue: Int?
    /// How many search steps one key may take before the checker gives up on it with `.undecided`.
    public var maximumSteps: Int

    /// Creates a checker.
    public init(initialValue: Int? = nil, maximumSteps: Int = 5_000_000) {
        self.initialValue = initialValue
        self.maximumSteps = maximumSteps
    }

    /// Checks each key's history separately and returns the first failure in key order, else `.linearizable`.
    ///
    /// A `.notLinearizable` verdict on any key wins over an `.undecided` one on an earlier key, because it is a
    /// definite answer.
    public func check(_ history: [HistoryEntry]) -> LinearizabilityResult {
        var firstUndecided: LinearizabilityResult?
        for (key, entries) in Self.groupedByKey(history) {
            let result = examine(key, entries).result
            switch result {
            case .linearizable:
                continue
            case .notLinearizable:
                return result
            case .undecided:
                if firstUndecided == nil {
                    firstUndecided = result
                }
            }
        }
        return firstUndecided ?? .linearizable
    }

    /// Checks one key's entries; entries for other keys are ignored.
    public func checkKey(_ key: String, _ entries: [HistoryEntry]) -> LinearizabilityResult {
        examine(key, entries.filter { $0.key == key }).result
    }

    /// Checks every key and summarises each: operations checked, operations with unknown outcome, steps spent and
    /// the verdict. Keys come in ascending order.
    public func report(_ history: [HistoryEntry]) -> [KeyReport] {
        Self.groupedByKey(history).map { examine($0.key, $0.entries) }
    }

    private static func groupedByKey(_ history: [HistoryEntry]) -> [(key: String, entries: [HistoryEntry])] {
        Dictionary(grouping: history, by: \.key).sorted { $0.key < $1.key }.map { (key: $0.key, entries: $0.value) }
    }

    private func examine(_ key: String, _ entries: [HistoryEntry]) -> KeyReport {
        let operations: [PreparedOperation]
        switch PreparedOperation.prepare(entries) {
        case .malformed(let explanation):
            let result = LinearizabilityResult.notLinearizable(key: key, explanation: explanation)
            return KeyReport(key: key, operations: 0, unknown: 0, steps: 0, result: result)
        case .operations(let prepared):
            operations = prepared
        }
        let unknown = operations.count { $0.isUnknown }
        func report(_ steps: Int, _ result: LinearizabilityResult) -> KeyReport {
            KeyReport(key: key, operations: operations.count, unknown: unknown, steps: steps, result: result)
        }
        // A value no operation could have stored refutes the history outright, however large the search would be.
        if let explanation = PreparedOperation.unwrittenValue(in: operations, initialValue: initialValue) {
            return report(0, .notLinearizable(key: key, explanation: explanation))
        }
        var search = RegisterSearch(operations: operations, initialValue: initialValue, maximumSteps: maximumSteps)
        switch search.run() {
        case .linearizable:
            return report(search.steps, .linearizable)
        case .notLinearizable(let explanation):
            return report(search.steps, .notLinearizable(key: key, explanation: explanation))
        case .budgetExhausted(let reason):
            return report(search.steps, .undecided(key: key, reason: reason))
        }
    }
}

/// An entry reduced to what the search needs.
struct PreparedOperation {
    /// The operation together with the result the client observed.
    enum Effect: Equatable {
        case read(Int?)
        case write(Int)
        /// `swapped == nil` when the outcome is unknown: either result is acceptable.
        case compareAndSet(expected: Int?, new: Int, swapped: Bool?)

        /// Whether the operation leaves the register as it found it whenever its observed result is possible.
        var preservesState: Bool {
            switch self {
            case .read: true
            case .write: false
            case .compareAndSet(let expected, let new, let swapped):
                swapped == false || (swapped == true && expected == new)
            }
        }

        /// The register value after this operation when it is applied to `state`, or `nil` when the sequential
        /// specification cannot produce the result the client observed.
        func apply(to state: Int?) -> Int?? {
            switch self {
            case .read(let value):
                return value == state ? .some(state) : nil
            case .write(let value):
                return .some(value)
            case .compareAndSet(let expected, let new, let swapped):
                let swaps = state == expected
                if let swapped, swapped != swaps {
                    return nil
                }
                return .some(swaps ? new : state)
            }
        }
    }

    /// The outcome of reducing a key's entries.
    enum Preparation {
        case operations([PreparedOperation])
        case malformed(String)
    }

    var effect: Effect
    var invoked: UInt64
    /// `nil` when the operation may take effect at any time after its invocation, or never.
    var completed: UInt64?
    var entry: HistoryEntry

    var isUnknown: Bool { completed == nil }

    /// Drops entries that cannot have had an observable effect and pairs each remaining operation with its result.
    static func prepare(_ entries: [HistoryEntry]) -> Preparation {
        var operations: [PreparedOperation] = []
        operations.reserveCapacity(entries.count)
        for entry in entries {
            let effect: Effect
            switch (entry.operation, entry.outcome) {
            case (_, .failed), (.read, .unknown):
                continue
            case (.read, .read(let value)):
                effect = .read(value)
            case (.write(let value), .written), (.write(let value), .unknown):
                effect = .write(value)
            case (.compareAndSet(let expected, let new), .compareAndSet(let swapped)):
                effect = .compareAndSet(expected: expected, new: new, swapped: swapped)
            case (.compareAndSet(let expected, let new), .unknown):
                effect = .compareAndSet(expected: expected, new: new, swapped: nil)
            default:
                return .malformed("malformed entry: \(entry.summary) pairs an operation with an outcome it cannot have")
            }
            let completed: UInt64?
            if entry.outcome == .unknown {
                // Whatever completion time was recorded, the effect may land after it.
                completed = nil
            } else if let time = entry.completed, time >= entry.invoked {
                completed = time
            } else if entry.completed == nil {
                return .malformed("malformed entry: \(entry.summary) has a definite outcome but no completion time")
            } else {
                return .malformed("malformed entry: \(entry.summary) completed before it was invoked")
            }
            operations.append(
                PreparedOperation(effect: effect, invoked: entry.invoked, completed: completed, entry: entry))
        }
        return .operations(operations)
    }

    /// Explains the first operation that observed a value no operation could have stored, if there is one.
    static func unwrittenValue(in operations: [PreparedOperation], initialValue: Int?) -> String? {
        var storable: Set<Int?> = [initialValue]
        for operation in operations {
            switch operation.effect {
            case .write(let value):
                storable.insert(value)
            case .compareAndSet(_, let new, let swapped) where swapped != false:
                storable.insert(new)
            default:
                break
            }
        }
        for operation in operations {
            switch operation.effect {
            case .read(let value) where !storable.contains(value):
                return
                    "\(operation.entry.summary) returned \(render(value)), which is neither the initial value nor written by any operation"
            case .compareAndSet(let expected, _, true) where !storable.contains(expected):
                return
                    "\(operation.entry.summary) swapped from \(render(expected)), which is neither the initial value nor written by any operation"
            default:
                continue
            }
        }
        return nil
    }
}
