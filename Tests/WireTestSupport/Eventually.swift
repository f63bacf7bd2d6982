/// Polls the async `condition` until it holds or `timeout` passes, and returns whether it held: a way to wait for
/// something another task or process does, without guessing how long it takes.
public func eventuallyAsync(timeout: Duration = .seconds(10), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(5))
    }
    return await condition()
}
