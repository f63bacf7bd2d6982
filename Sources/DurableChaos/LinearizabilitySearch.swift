/// The Wing–Gong search with Lowe's memoisation over one key's operations.
///
/// The history is a doubly linked list of call and return events in time order. The search walks it from the
/// front: at a call it tries to linearize that operation now (apply it to the register, and if the observed result
/// fits, remove its call and return from the list and restart from the front); at a return it has reached an
/// operation that had to take effect already, so it undoes the most recent linearization and tries the next
/// candidate after it. Configurations (set of linearized operations, register value) already explored are skipped,
/// which is what keeps the search polynomial on histories with bounded concurrency.
///
/// Operations with an unknown outcome have a call but no return, so they sit in a list of their own: the search
/// may linearize one whenever its call precedes the first remaining return, and succeeds as soon as every
/// operation with a known outcome is linearized, leaving the others as never applied.
struct RegisterSearch {
    enum Outcome {
        case linearizable
        case notLinearizable(String)
        case budgetExhausted(String)
    }

    /// The candidates at a configuration are the calls before the first remaining return; they are tried in three
    /// passes, one per phase.
    enum Phase {
        /// Operations with a known outcome that leave the register as it is (reads, compare-and-sets that did not
        /// swap). One that fits now is placed without trying alternatives: moving it to the front of any
        /// linearization from here gives another linearization, because it changes nothing and it is already
        /// allowed to take effect.
        case preserving
        /// The other operations with a known outcome; each is a branch.
        case changing
        /// Operations with an unknown outcome, tried last so that they are placed only where something after them
        /// needs their effect.
        case unknown
    }

    private struct Placement {
        var event: Int
        var valueBefore: Int?
        var phase: Phase
    }

    /// The sentinel heading the list of events of operations with a known outcome.
    private static let head = 0
    /// The sentinel heading the list of calls of operations with an unknown outcome.
    private static let unknownHead = 1
    private static let end = -1

    private let operations: [PreparedOperation]
    private let initialValue: Int?
    private let maximumSteps: Int
    private(set) var steps = 0

    // Per operation, copied out of `operations` so that the inner loop does not copy entries.
    private let effects: [PreparedOperation.Effect]
    private let isUnknown: [Bool]
    private let phases: [Phase]
    /// Each operation's call and return events; the return is `end` for an unknown outcome.
    private let callEvent: [Int]
    private let returnEvent: [Int]
    /// Each operation's bit in `definite` or `unknown`, assigned in call order.
    private let bit: [Int]

    // Per event; events are numbered in time order after the two sentinels, so comparing numbers compares times.
    private var next: [Int]
    private var previous: [Int]
    private let eventOperation: [Int]
    private let eventIsCall: [Bool]

    private var definite: LinearizedSet
    private var unknown: LinearizedSet
    private var visited = VisitedConfigurations()
    private var keyScratch: [UInt64] = []
    private var firstReturnCache: Int?

    // The furthest return event the search was stopped at, for the explanation.
    private var stuckEvent = Self.end
    private var stuckValues: [Int?] = []
    private var stuckPlacedBefore: [Int] = []
    private var stuckLinearizedCount = 0
    private var mostLinearized = 0

    init(operations: [PreparedOperation], initialValue: Int?, maximumSteps: Int) {
        self.operations = operations
        self.initialValue = initialValue
        self.maximumSteps = maximumSteps
        effects = operations.map(\.effect)
        isUnknown = operations.map(\.isUnknown)
        phases = operations.map { operation in
            operation.isUnknown ? .unknown : operation.effect.preservesState ? .preserving : .changing
        }

        var events: [(time: UInt64, isReturn: Bool, operation: Int)] = []
        events.reserveCapacity(operations.count * 2)
        for (index, operation) in operations.enumerated() {
            events.append((operation.invoked, false, index))
            if let completed = operation.completed {
                events.append((completed, true, index))
            }
        }
        // Calls sort before returns at the same instant: an operation that completes exactly when another is
        // invoked is concurrent with it, not ordered before it.
        events.sort { ($0.time, $0.isReturn ? 1 : 0, $0.operation) < ($1.time, $1.isReturn ? 1 : 0, $1.operation) }

        let eventCount = events.count + 2
        var next = Array(repeating: Self.end, count: eventCount)
        var previous = Array(repeating: Self.end, count: eventCount)
        var eventOperation = Array(repeating: -1, count: eventCount)
        var eventIsCall = Array(repeating: false, count: eventCount)
        var callEvent = Array(repeating: Self.end, count: operations.count)
        var returnEvent = Array(repeating: Self.end, count: operations.count)
        var bit = Array(repeating: 0, count: operations.count)
        // The last event of each list, indexed by the list's sentinel (which are 0 and 1).
        var tails = [Self.head, Self.unknownHead]
        var definiteCount = 0
        var unknownCount = 0
        for (offset, event) in events.enumerated() {
            let index = offset + 2
            let operation = event.operation
            eventOperation[index] = operation
            eventIsCall[index] = !event.isReturn
            let list = operations[operation].isUnknown ? Self.unknownHead : Self.head
            next[tails[list]] = index
            previous[index] = tails[list]
            tails[list] = index
            if event.isReturn {
                returnEvent[operation] = index
                continue
            }
            callEvent[operation] = index
            if operations[operation].isUnknown {
                bit[operation] = unknownCount
                unknownCount += 1
            } else {
                bit[operation] = definiteCount
                definiteCount += 1
            }
        }
        self.next = next
        self.previous = previous
        self.eventOperation = eventOperation
        self.eventIsCall = eventIsCall
        self.callEvent = callEvent
        self.returnEvent = returnEvent
        self.bit = bit
        definite = LinearizedSet(count: definiteCount)
        unknown = LinearizedSet(count: unknownCount)
    }

    /// Runs the search to a verdict or until the step budget is spent.
    mutating func run() -> Outcome {
        var value = initialValue
        var placed: [Placement] = []
        var phase = Phase.preserving
        var event = next[Self.head]
        while definite.count < definite.capacity {
            guard steps < maximumSteps else {
                return .budgetExhausted(
                    "gave up after \(steps) steps, having linearized at most \(mostLinearized) of "
                        + "\(definite.capacity) operations with a known outcome"
                )
            }
            steps += 1
            let isCandidate =
                phase == .unknown
                ? event != Self.end && event < firstReturn()
                : event != Self.end && eventIsCall[event]
            if isCandidate {
                let operation = eventOperation[event]
                guard phases[operation] == phase, let after = effects[operation].apply(to: value),
                    isUseful(operation, changing: value, to: after, after: placed.last?.event)
                else {
                    event = next[event]
                    continue
                }
                if markIfUnexplored(operation, value: after) {
                    placed.append(Placement(event: event, valueBefore: value, phase: phase))
                    value = after
                    lift(operation)
                    mostLinearized = max(mostLinearized, definite.count)
                    phase = .preserving
                    event = next[Self.head]
                    continue
                }
                guard phase == .preserving else {
                    event = next[event]
                    continue
                }
                // A state-preserving operation that fits must go first (see `Phase.preserving`), so if that
                // configuration was explored already, so was every way on from this one.
            } else if phase == .preserving {
                phase = .changing
                event = next[Self.head]
                continue
            } else if phase == .changing && next[Self.unknownHead] != Self.end {
                phase = .unknown
                event = next[Self.unknownHead]
                continue
            } else {
                // The first remaining return belongs to an operation that should have been linearized by now, so
                // the most recent choice was wrong.
                noteStuck(at: firstReturn(), value: value, placed: placed)
            }
            // Undo placements up to the most recent one that had alternatives, and try the next of those.
            var last: Placement
            repeat {
                guard let popped = placed.popLast() else {
                    return .notLinearizable(explanation())
                }
                last = popped
                let operation = eventOperation[last.event]
                unmark(operation)
                unlift(operation)
                value = last.valueBefore
            } while last.phase == .preserving
            phase = last.phase
            event = next[last.event]
        }
        return .linearizable
    }

    /// Whether placing `operation` next can lead anywhere that leaving it out cannot.
    ///
    /// An unknown operation that leaves the register as it was could as well never have happened, and the
    /// configuration with it still pending offers more. One that changes the value matters only if the next
    /// operation placed depends on that change: a write straight after it would erase it unseen, and an operation
    /// that fits the value before it would have been placed before it (state-preserving ones are placed first;
    /// others could swap places with it).
    private mutating func isUseful(_ operation: Int, changing value: Int?, to after: Int?, after previous: Int?)
        -> Bool
    {
        if let previous, isUnknown[eventOperation[previous]], case .write = effects[operation] {
            return false
        }
        guard isUnknown[operation] else {
            return true
        }
        return after != value && canObserveChange(from: value, to: after)
    }

    /// Whether an operation that may be linearized now fits the register holding `after` only because it no longer
    /// holds `value`: a read of `after`, a compare-and-set from `after` that swapped or may have, or one from
    /// `value` that did not swap.
    private mutating func canObserveChange(from value: Int?, to after: Int?) -> Bool {
        func observes(_ operation: Int) -> Bool {
            switch effects[operation] {
            case .read(let seen): seen == after
            case .compareAndSet(let expected, _, let swapped): swapped == false ? expected == value : expected == after
            case .write: false
            }
        }
        var event = next[Self.head]
        while event != Self.end && eventIsCall[event] {
            if observes(eventOperation[event]) {
                return true
            }
            event = next[event]
        }
        let limit = firstReturn()
        event = next[Self.unknownHead]
        while event != Self.end && event < limit {
            if observes(eventOperation[event]) {
                return true
            }
            event = next[event]
        }
        return false
    }

    /// The first return event still in the list (`Int.max` if none): only calls before it may be linearized next.
    private mutating func firstReturn() -> Int {
        if let cached = firstReturnCache {
            return cached
        }
        var event = next[Self.head]
        while event != Self.end && eventIsCall[event] {
            event = next[event]
        }
        let result = event == Self.end ? Int.max : event
        firstReturnCache = result
        return result
    }

    // MARK: - Event lists

    private mutating func lift(_ operation: Int) {
        firstReturnCache = nil
        unlink(callEvent[operation])
        if returnEvent[operation] != Self.end {
            unlink(returnEvent[operation])
        }
    }

    /// Reinserts in the reverse order of `lift`, so each event's neighbours are the ones it had when removed.
    private mutating func unlift(_ operation: Int) {
        firstReturnCache = nil
        if returnEvent[operation] != Self.end {
            relink(returnEvent[operation])
        }
        relink(callEvent[operation])
    }

    private mutating func unlink(_ event: Int) {
        next[previous[event]] = next[event]
        if next[event] != Self.end {
            previous[next[event]] = previous[event]
        }
    }

    private mutating func relink(_ event: Int) {
        next[previous[event]] = event
        if next[event] != Self.end {
            previous[next[event]] = event
        }
    }

    // MARK: - Memoisation

    /// Adds `operation` to the linearized set and reports whether the resulting configuration is worth exploring;
    /// if not, the set is left unchanged.
    ///
    /// A configuration is not worth exploring when it was explored before, or when the same configuration with
    /// one fewer unknown operation placed was: leaving an unknown operation pending only adds options, so that
    /// configuration can do everything this one can.
    private mutating func markIfUnexplored(_ operation: Int, value: Int?) -> Bool {
        if isUnknown[operation] {
            unknown.insert(bit[operation])
        } else {
            definite.insert(bit[operation])
        }
        keyScratch.removeAll(keepingCapacity: true)
        definite.appendCanonicalWords(to: &keyScratch)
        let definitePart = keyScratch.count
        appendUnknownAndValue(value)
        var unexplored = visited.insert(keyScratch)
        if unexplored && unknown.count > 0 {
            for member in unknown.members() {
                unknown.remove(member)
                keyScratch.removeSubrange(definitePart...)
                appendUnknownAndValue(value)
                unknown.insert(member)
                if visited.contains(keyScratch) {
                    unexplored = false
                    break
                }
            }
        }
        if !unexplored {
            unmark(operation)
        }
        return unexplored
    }

    /// Appends the unknown operations placed and the register value, which ends the key: an unset register adds
    /// no word, so the key's length tells it apart from every value.
    private mutating func appendUnknownAndValue(_ value: Int?) {
        unknown.appendCanonicalWords(to: &keyScratch)
        if let value {
            keyScratch.append(UInt64(bitPattern: Int64(value)))
        }
    }

    private mutating func unmark(_ operation: Int) {
        if isUnknown[operation] {
            unknown.remove(bit[operation])
        } else {
            definite.remove(bit[operation])
        }
    }

    // MARK: - Explanation

    private mutating func noteStuck(at event: Int, value: Int?, placed: [Placement]) {
        guard event != Int.max else {
            return
        }
        if stuckEvent == Self.end || event > stuckEvent {
            stuckEvent = event
            stuckValues = [value]
            stuckPlacedBefore = placed.suffix(3).map { eventOperation[$0.event] }
            stuckLinearizedCount = definite.count
        } else if event == stuckEvent && stuckValues.count < 4 && !stuckValues.contains(value) {
            stuckValues.append(value)
        }
    }

    private func explanation() -> String {
        guard stuckEvent != Self.end else {
            return "no operation could be linearized"
        }
        let operation = operations[eventOperation[stuckEvent]]
        let values = stuckValues.map(render).joined(separator: " or ")
        var text =
            "\(operation.entry.summary) cannot be linearized: every order tried reaches its completion without "
            + "placing it (\(stuckLinearizedCount) of \(definite.capacity) operations with a known outcome placed, "
            + "register holding \(values))"
        if !stuckPlacedBefore.isEmpty {
            let names = stuckPlacedBefore.map { operations[$0].entry.summary }
            text += "; last operations placed before it: " + names.joined(separator: ", ")
        }
        return text
    }
}

/// A set of operation indices as a bitset, with a canonical encoding that stays short while the search keeps
/// linearizing a prefix of the history.
struct LinearizedSet {
    private var words: [UInt64]
    let capacity: Int
    private(set) var count = 0
    /// Every word before this one has all its bits set.
    private var firstNotFull = 0
    /// Every word after this one is zero (-1 when the set is empty).
    private var lastNonZero = -1

    init(count: Int) {
        capacity = count
        words = Array(repeating: 0, count: (count + 63) / 64)
    }

    private func fullWord(_ index: Int) -> UInt64 {
        let bits = min(64, capacity - index * 64)
        return bits == 64 ? ~0 : (1 << UInt64(bits)) - 1
    }

    mutating func insert(_ index: Int) {
        let word = index >> 6
        words[word] |= 1 << UInt64(index & 63)
        count += 1
        lastNonZero = max(lastNonZero, word)
        while firstNotFull < words.count && words[firstNotFull] == fullWord(firstNotFull) {
            firstNotFull += 1
        }
    }

    mutating func remove(_ index: Int) {
        let word = index >> 6
        words[word] &= ~(1 << UInt64(index & 63))
        count -= 1
        firstNotFull = min(firstNotFull, word)
        while lastNonZero >= 0 && words[lastNonZero] == 0 {
            lastNonZero -= 1
        }
    }

    /// The indices in the set, in ascending order.
    func members() -> [Int] {
        var result: [Int] = []
        result.reserveCapacity(count)
        for (wordIndex, word) in words.enumerated() where word != 0 {
            var remaining = word
            while remaining != 0 {
                result.append(wordIndex * 64 + remaining.trailingZeroBitCount)
                remaining &= remaining - 1
            }
        }
        return result
    }

    /// Appends an encoding that is equal for two sets exactly when they are equal: one word holding the number of
    /// leading full words and the number of words that follow, then those words (the rest are zero).
    func appendCanonicalWords(to key: inout [UInt64]) {
        let middle = max(0, lastNonZero - firstNotFull + 1)
        key.append(UInt64(firstNotFull) | UInt64(middle) << 32)
        if middle > 0 {
            key.append(contentsOf: words[firstNotFull...lastNonZero])
        }
    }
}

/// The explored configurations: an open-addressing hash set of word sequences stored back to back in one array,
/// because the search may record millions of them and one allocation each would dominate its time and memory.
struct VisitedConfigurations {
    /// Each entry is its length followed by its words.
    private var storage: [UInt64] = []
    /// The offset in `storage` of the entry in each slot, or -1.
    private var slots = Array(repeating: -1, count: 1024)
    private var slotHashes = Array(repeating: UInt64(0), count: 1024)
    private var count = 0

    /// Whether `key` was inserted.
    func contains(_ key: [UInt64]) -> Bool {
        slots[slot(for: key, hash: Self.hash(key))] >= 0
    }

    /// Inserts `key` and reports whether it was absent.
    mutating func insert(_ key: [UInt64]) -> Bool {
        if (count + 1) * 2 > slots.count {
            grow()
        }
        let hash = Self.hash(key)
        let slot = slot(for: key, hash: hash)
        if slots[slot] >= 0 {
            return false
        }
        slots[slot] = storage.count
        slotHashes[slot] = hash
        storage.append(UInt64(key.count))
        storage.append(contentsOf: key)
        count += 1
        return true
    }

    /// The slot holding `key`, or the empty slot where it would go.
    private func slot(for key: [UInt64], hash: UInt64) -> Int {
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: hash) & mask
        while slots[slot] >= 0 && !(slotHashes[slot] == hash && matches(at: slots[slot], key)) {
            slot = (slot + 1) & mask
        }
        return slot
    }

    private func matches(at offset: Int, _ key: [UInt64]) -> Bool {
        guard storage[offset] == UInt64(key.count) else {
            return false
        }
        for (index, word) in key.enumerated() where storage[offset + 1 + index] != word {
            return false
        }
        return true
    }

    private mutating func grow() {
        let oldSlots = slots
        let oldHashes = slotHashes
        slots = Array(repeating: -1, count: oldSlots.count * 2)
        slotHashes = Array(repeating: 0, count: oldSlots.count * 2)
        let mask = slots.count - 1
        for (offset, hash) in zip(oldSlots, oldHashes) where offset >= 0 {
            var slot = Int(truncatingIfNeeded: hash) & mask
            while slots[slot] >= 0 {
                slot = (slot + 1) & mask
            }
            slots[slot] = offset
            slotHashes[slot] = hash
        }
    }

    /// A multiply–xorshift mix, so that keys differing in one bit land in unrelated slots.
    private static func hash(_ key: [UInt64]) -> UInt64 {
        var hash: UInt64 = 0x9E37_79B9_7F4A_7C15
        for word in key {
            hash = (hash ^ word) &* 0xBF58_476D_1CE4_E5B9
            hash ^= hash >> 31
        }
        hash = (hash ^ UInt64(key.count)) &* 0x94D0_49BB_1331_11EB
        return hash ^ (hash >> 29)
    }
}
