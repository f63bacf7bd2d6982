import Foundation

extension DurableObjectStorageView {
    /// The time the object's alarm is set for, or `nil` when none is set. Inside a running ``AlarmHandling/alarm(_:)``
    /// handler it is `nil` unless a new alarm was set since the handler started.
    public func getAlarm(
        options: StorageReadOptions = StorageReadOptions(), isolation: isolated (any Actor)? = #isolation
    ) async throws -> Date? {
        try operations("getAlarm").readAlarm().map { Date(timeIntervalSince1970: Double($0) / 1_000) }
    }

    /// Sets the object's alarm to `date`, replacing any alarm set before (an object has at most one). A time in
    /// the past runs as soon as possible. Like `put`, it is a write of the current turn: it takes effect, and the
    /// alarm is scheduled, once the turn's writes are durable.
    ///
    /// - Throws: `setAlarm() cannot be called with an alarm time <= 0` for a time at or before the Unix epoch;
    ///   `Your Durable Object class must have an alarm() handler in order to call setAlarm()` when the class does
    ///   not conform to ``AlarmHandling``.
    public func setAlarm(
        _ date: Date, options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws {
        try await setAlarm(epochMilliseconds: date.timeIntervalSince1970 * 1_000, options: options)
    }

    /// Sets the object's alarm to a time in milliseconds since the Unix epoch (the form `Date.now()` gives in
    /// JavaScript), rounded down to a whole millisecond.
    ///
    /// - Throws: like ``setAlarm(_:options:isolation:)``.
    public func setAlarm(
        epochMilliseconds: Double, options: StorageWriteOptions = StorageWriteOptions(),
        isolation: isolated (any Actor)? = #isolation
    ) async throws {
        guard epochMilliseconds.isFinite, epochMilliseconds > 0 else { throw DurableObjectError.alarmTimeNotPositive }
        let milliseconds = Int64(min(epochMilliseconds.rounded(.down), Double(Int64.max / 2)))
        guard milliseconds > 0 else { throw DurableObjectError.alarmTimeNotPositive }
        try operations("setAlarm").writeAlarm(milliseconds, options: options)
    }

    /// Deletes the object's alarm, if one is set.
    public func deleteAlarm(
        options: StorageWriteOptions = StorageWriteOptions(), isolation: isolated (any Actor)? = #isolation
    ) async throws {
        try operations("deleteAlarm").writeAlarm(nil, options: options)
    }
}

extension StorageOperations {
    func readAlarm() throws -> Int64? {
        try engine.readAlarm(inTransaction: inTransaction)
    }

    func writeAlarm(_ milliseconds: Int64?, options: StorageWriteOptions) throws {
        try engine.writeAlarm(milliseconds, unconfirmed: options.allowUnconfirmed, inTransaction: inTransaction)
    }
}
