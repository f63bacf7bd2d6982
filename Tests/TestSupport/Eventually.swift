/// Polls `condition` until it holds or `timeout` passes, and returns whether it held: the way to wait for something
/// another task or process does, without guessing how long it takes. Use it inside `#expect` so that a timeout is a
/// failure naming what did not happen.
///
/// The default deadline is generous on purpose: a condition that holds returns at once, so only a failing test ever
/// waits that long, and a machine loaded by other tests can be many times slower than an idle one.
public func eventually(
    timeout: Duration = .seconds(30), pollingEvery interval: Duration = .milliseconds(5),
    _ condition: () async throws -> Bool
) async rethrows -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// Whether `task` finishes within `timeout` (it is not cancelled either way).
public func finishes<T: Sendable, Failure: Error>(
    _ task: Task<T, Failure>, within timeout: Duration = .seconds(30)
) async -> Bool {
    let done = Latch()
    let watcher = Task {
        _ = await task.result
        done.open()
    }
    defer { watcher.cancel() }
    return await eventually(timeout: timeout) { done.isOpen }
}
