import CoreMetrics

/// The figures a ``GroupCommitter`` reports through swift-metrics: how many batches share each synced write, how
/// long the writes take, and how many bytes they carry.
///
/// The metric objects are made once, when the committer is made; recording a group costs a few atomic updates.
public struct GroupCommitMetrics: Sendable {
    /// The metric names, for dashboards and tests.
    public enum Name {
        /// Histogram of batches written by one synced write.
        public static let batchesPerSync = "durable_group_commit_batches_per_sync"
        /// Histogram of the time one synced write takes, in seconds.
        public static let syncDuration = "durable_group_commit_sync_duration_seconds"
        /// Counter of the bytes of the batches written.
        public static let syncedBytes = "durable_group_commit_synced_bytes_total"
        /// Counter of synced writes that failed.
        public static let failedSyncs = "durable_group_commit_failed_syncs_total"
    }

    private let batchesPerSync: Recorder
    private let syncDuration: CoreMetrics.Timer
    private let syncedBytes: Counter
    private let failedSyncs: Counter

    /// Makes the metric objects with `factory` (by default the process's bootstrapped one).
    public init(factory: any MetricsFactory = MetricsSystem.factory) {
        batchesPerSync = Recorder(label: Name.batchesPerSync, dimensions: [], aggregate: true, factory: factory)
        syncDuration = CoreMetrics.Timer(label: Name.syncDuration, dimensions: [], factory: factory)
        syncedBytes = Counter(label: Name.syncedBytes, dimensions: [], factory: factory)
        failedSyncs = Counter(label: Name.failedSyncs, dimensions: [], factory: factory)
    }

    /// Records one synced write of `batches` batches carrying `bytes` bytes, which took `nanoseconds`.
    func recordSync(batches: Int, bytes: Int, nanoseconds: UInt64, failed: Bool) {
        batchesPerSync.record(batches)
        syncDuration.recordNanoseconds(Int64(clamping: nanoseconds))
        if failed {
            failedSyncs.increment()
        } else {
            syncedBytes.increment(by: bytes)
        }
    }
}
