import Synchronization

/// A one-shot gate tasks can wait on: closed until ``open()``, then open for good.
public final class Latch: Sendable {
    private struct State {
        var open = false
        var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var next: UInt64 = 0
    }
    private let state = Mutex(State())

    /// Creates a closed latch.
    public init() {}

    /// Opens the latch: every waiter resumes, and later waits return at once.
    public func open() {
        let waiters = state.withLock { state in
            state.open = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Whether the latch is open.
    public var isOpen: Bool { state.withLock { $0.open } }

    /// How many callers wait now.
    public var waiterCount: Int { state.withLock { $0.waiters.count } }

    /// Waits until the latch opens (or the task is cancelled).
    public func wait() async {
        let ticket = state.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state -> Bool in
                    if state.open { return true }
                    state.waiters[ticket] = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: ticket) }?.resume()
        }
    }
}

/// A list that concurrent tasks append to, read in the order of the appends.
public final class Recorder<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])

    /// Creates an empty list.
    public init() {}

    /// Appends `value`.
    public func append(_ value: Element) { storage.withLock { $0.append(value) } }

    /// Everything appended so far.
    public var values: [Element] { storage.withLock { $0 } }
}

extension Result where Failure == any Error {
    /// Runs an async throwing closure and captures its outcome.
    public init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}
