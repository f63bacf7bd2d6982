import DurableChaos
import DurableClient
import DurableObjects
import Foundation
import Synchronization

/// Everything the clients saw: every register operation (for the linearizability check), and every counter
/// increment and log append with its outcome (for the durability checks).
final class ChaosRecord: Sendable {
    struct Append: Sendable, Hashable {
        var value: String
        var client: Int
        /// The index the object answered, when acknowledged.
        var index: Int?
    }

    struct State {
        var registers: [HistoryEntry] = []
        /// Counter name → the values acknowledged increments answered.
        var counterAcks: [String: [Int]] = [:]
        /// Counter name → increments whose outcome is unknown.
        var counterUnknown: [String: Int] = [:]
        var appendsAcked: [String: [Append]] = [:]
        var appendsUnknown: [String: Set<String>] = [:]
        var appendsFailed: [String: Set<String>] = [:]
        var outcomes: [String: Int] = [:]
    }

    let state = Mutex(State())
    let start = ContinuousClock.now

    /// Nanoseconds since the run started.
    var now: UInt64 {
        let elapsed = ContinuousClock.now - start
        return UInt64(elapsed.components.seconds) * 1_000_000_000
            + UInt64(elapsed.components.attoseconds / 1_000_000_000)
    }

    func count(_ outcome: String) { state.withLock { $0.outcomes[outcome, default: 0] += 1 } }
}

/// What the clients share: whether to stop, and the next sequence number (which makes every written value unique).
final class RunControl: Sendable {
    let stop = Atomic<Bool>(false)
    let sequence = Atomic<Int>(0)
}

/// How a failed call ended for the history: `failed` when it certainly never ran, `unknown` otherwise.
func outcome(of error: any Error) -> RegisterOutcome {
    if let error = error as? DurableObjectError {
        // Refused by an object's full queue: never ran. No connection to the gateway: never sent.
        if error.overloaded || error.message.hasPrefix("Cannot connect to") { return .failed }
    }
    return .unknown
}

/// A client: one task issuing operations back to back until told to stop.
struct ChaosClient: Sendable {
    let id: Int
    let registers: DurableObjectNamespace
    let counters: DurableObjectNamespace
    let record: ChaosRecord
    /// The register objects of the current round.
    let registerNames: [String]
    let counterNames: [String]
    let logNames: [String]

    func run(_ control: RunControl) async {
        var generator = SystemRandomNumberGenerator()
        var lastSeen: [String: Int?] = [:]
        while !control.stop.load(ordering: .relaxed) {
            let sequenceNumber = control.sequence.wrappingAdd(1, ordering: .relaxed).oldValue
            let choice = Int.random(in: 0..<100, using: &generator)
            let ok: Bool
            if choice < 55 {
                let name = registerNames.randomElement(using: &generator)!
                ok = await registerOperation(
                    on: name, value: id * 10_000_000 + sequenceNumber, lastSeen: &lastSeen, generator: &generator)
            } else if choice < 78 {
                ok = await increment(counterNames.randomElement(using: &generator)!)
            } else {
                ok = await append(to: logNames.randomElement(using: &generator)!, value: "c\(id)-\(sequenceNumber)")
            }
            // After an error the cluster is probably restarting something: a short pause keeps the histories
            // small without stopping the load.
            if !ok { try? await Task.sleep(for: .milliseconds(25)) }
        }
    }

    private func registerOperation(
        on name: String, value: Int, lastSeen: inout [String: Int?], generator: inout SystemRandomNumberGenerator
    ) async -> Bool {
        let kind = Int.random(in: 0..<3, using: &generator)
        let operation: RegisterOperation
        let url: String
        let method: Request.Method
        switch kind {
        case 0:
            operation = .read
            url = "http://register/register"
            method = .get
        case 1:
            operation = .write(value)
            url = "http://register/register/write?value=\(value)"
            method = .post
        default:
            let expected = lastSeen[name] ?? nil
            operation = .compareAndSet(expected: expected, new: value)
            url = "http://register/register/cas?expected=\(expected.map { "\($0)" } ?? "unset")&new=\(value)"
            method = .post
        }
        let invoked = record.now
        var entry = HistoryEntry(
            key: name, client: id, operation: operation, invoked: invoked, completed: nil, outcome: .unknown)
        var ok = false
        do {
            let response = try await registers.getByName(name).fetch(url, method: method)
            let text = response.text()
            guard response.status == .ok else { throw ChaosError("\(name): \(response.status.code) \(text)") }
            entry.completed = record.now
            switch operation {
            case .read:
                let seen = text == "unset" ? nil : Int(text)
                guard text == "unset" || seen != nil else { throw ChaosError("\(name) answered '\(text)'") }
                entry.outcome = .read(seen)
                lastSeen[name] = .some(seen)
            case .write:
                entry.outcome = .written
                lastSeen[name] = .some(value)
            case .compareAndSet:
                entry.outcome = .compareAndSet(text == "true")
                if text == "true" { lastSeen[name] = .some(value) } else { lastSeen[name] = nil }
            }
            ok = true
        } catch {
            entry.outcome = outcome(of: error)
            if entry.outcome == .failed { entry.completed = record.now }
        }
        let final = entry
        record.state.withLock { $0.registers.append(final) }
        record.count(ok ? "ok" : (final.outcome == .failed ? "failed" : "unknown"))
        return ok
    }

    private func increment(_ name: String) async -> Bool {
        do {
            let response = try await counters.getByName(name).fetch("http://counter/increment", method: .post)
            guard response.status == .ok, let value = Int(response.text()) else {
                throw ChaosError("\(name): \(response.status.code) \(response.text())")
            }
            record.state.withLock { $0.counterAcks[name, default: []].append(value) }
            record.count("ok")
            return true
        } catch {
            let result = outcome(of: error)
            if result == .unknown { record.state.withLock { $0.counterUnknown[name, default: 0] += 1 } }
            record.count(result == .failed ? "failed" : "unknown")
            return false
        }
    }

    private func append(to name: String, value: String) async -> Bool {
        do {
            let response = try await registers.getByName(name).fetch(
                "http://register/log/append?value=\(value)", method: .post)
            guard response.status == .ok, let index = Int(response.text()) else {
                throw ChaosError("\(name): \(response.status.code) \(response.text())")
            }
            record.state.withLock {
                $0.appendsAcked[name, default: []].append(.init(value: value, client: id, index: index))
            }
            record.count("ok")
            return true
        } catch {
            let result = outcome(of: error)
            record.state.withLock { state -> Void in
                if result == .failed {
                    state.appendsFailed[name, default: []].insert(value)
                } else {
                    state.appendsUnknown[name, default: []].insert(value)
                }
            }
            record.count(result == .failed ? "failed" : "unknown")
            return false
        }
    }
}
