import Foundation

/// Runs blocking work (a socket read, a process start, a wait for a child's exit, a synced database write) on a
/// thread of its own, and suspends the calling task until it is done.
///
/// Swift's cooperative pool has as many threads as the machine has cores (two here) and never adds one for a
/// blocked thread: a blocking call made straight from a test's task freezes every other test in the process for
/// as long as it blocks. Dispatch's global queues are no way out either, as they add a thread for a blocked one
/// only after about a second. A fresh thread per call costs tens of microseconds and never waits for a pool.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread { continuation.resume(with: Result { try body() }) }
        thread.name = "durable-tests.blocking"
        thread.start()
    }
}

/// ``offPool(_:)`` for work that cannot fail.
public func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = "durable-tests.blocking"
        thread.start()
    }
}
