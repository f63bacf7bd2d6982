import DurableObjects
import Foundation
import Synchronization

/// A `RuntimeClock` (of DurableObjects) that moves only when a test moves it, so that a test of a rule about time (a
/// request that waited past the queue's age bound, an object idle past the idle timeout, an alarm coming due) does
/// not depend on how fast the machine runs it.
///
/// ```swift
/// let clock = ManualRuntimeClock()
/// let runtime = try DurableTestRuntime(
///     classes: [DurableObjectClass(Counter.self)], bindings: ["COUNTER": "Counter"],
///     configuration: RuntimeConfiguration(idleTimeout: .seconds(60), clock: clock))
/// …
/// clock.advance(by: .seconds(61))  // the object is now idle past its timeout; the next sweep evicts it
/// ```
///
/// It starts at the moment it is made (its wall-clock time is the system's then), and alarms waiting for a time
/// wake when ``advance(by:)`` moves the clock past it.
public final class ManualRuntimeClock: RuntimeClock {
    private struct Sleeper {
        var deadline: Int64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var offset: Duration = .zero
        var sleepers: [UInt64: Sleeper] = [:]
        var nextTicket: UInt64 = 0
    }

    private let start = ContinuousClock.now
    private let startEpochMilliseconds = Int64((Date().timeIntervalSince1970 * 1_000).rounded(.down))
    private let state = Mutex(State())

    /// Creates a clock that stands at the moment it was made.
    public init() {}

    /// The clock's instant: the moment it was made, plus every ``advance(by:)`` so far.
    public var now: ContinuousClock.Instant { start + state.withLock { $0.offset } }

    /// The clock's wall-clock time: the system's when it was made, plus every ``advance(by:)`` so far.
    public var epochMilliseconds: Int64 {
        startEpochMilliseconds + Self.milliseconds(state.withLock { $0.offset })
    }

    /// How many tasks wait for a time this clock has not reached (alarms waiting to come due, for instance).
    public var sleeperCount: Int { state.withLock { $0.sleepers.count } }

    /// Moves the clock forward by `duration`, waking every sleeper whose time has come.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            state.offset += duration
            let now = startEpochMilliseconds + Self.milliseconds(state.offset)
            let tickets = state.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return tickets.compactMap { state.sleepers.removeValue(forKey: $0)?.continuation }
        }
        for continuation in due { continuation.resume() }
    }

    /// Suspends until ``advance(by:)`` moves the clock to `deadline` (at once when it is there already).
    public func sleep(untilEpochMilliseconds deadline: Int64) async throws {
        let ticket = state.withLock { state -> UInt64 in
            state.nextTicket += 1
            return state.nextTicket
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                // A task cancelled before it got here (its cancellation handler found nothing to cancel) ends now.
                let outcome = state.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if startEpochMilliseconds + Self.milliseconds(state.offset) >= deadline { return .success(()) }
                    state.sleepers[ticket] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            state.withLock { $0.sleepers.removeValue(forKey: ticket) }?.continuation.resume(
                throwing: CancellationError())
        }
    }

    private static func milliseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        return seconds * 1_000 + attoseconds / 1_000_000_000_000_000
    }
}
