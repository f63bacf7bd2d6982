import CoreMetrics
import Prometheus
import Synchronization

/// The metrics of one process (or, in tests, of one server): a Prometheus registry, the swift-metrics factories
/// that write into it, and the gauges that are read from live state when the registry is scraped.
///
/// Give ``factory(labels:)`` to the parts to measure (``RuntimeConfiguration/metricsFactory`` of a node's
/// runtime, `GatewayConfiguration.metricsFactory` of a gateway); serve ``exposition()`` at `GET /metrics` with a
/// ``MetricsServer``. Nothing here bootstraps swift-metrics' global `MetricsSystem`, so several registries can live
/// in one process without seeing each other's figures.
public final class MetricsRegistry: Sendable {
    /// The Prometheus registry the factories write into.
    public let registry: PrometheusCollectorRegistry
    private let gaugeUpdates = Mutex<[@Sendable () -> Void]>([])

    /// Latency buckets, in seconds: from 50 µs (an in-memory call on a warm object) to 10 s (a call at its
    /// deadline). Prometheus' default buckets start at 5 ms, above most calls here.
    public static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .microseconds(2_500_000),
        .seconds(5), .seconds(10),
    ]

    /// Buckets of value histograms (batches per group commit): powers of two up to 1024.
    public static let valueBuckets: [Double] = (0...10).map { Double(1 << $0) }

    /// Creates an empty registry.
    public init() {
        registry = PrometheusCollectorRegistry()
    }

    /// A swift-metrics factory that writes into this registry with the service's buckets, adding `labels` to every
    /// metric it makes (`[("node", "node-1")]` keeps the figures of several nodes in one process apart).
    public func factory(labels: [(String, String)] = []) -> any MetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = Self.durationBuckets
        factory.defaultValueHistogramBuckets = Self.valueBuckets
        if !labels.isEmpty {
            factory.nameAndLabelSanitizer = { name, dimensions in (name, dimensions + labels) }
        }
        return factory
    }

    /// Runs `update` before every scrape: the place to set gauges from live state (objects in memory, queued
    /// events, open sockets), so that the hot path keeps no running count of them.
    public func updateBeforeScrape(_ update: @escaping @Sendable () -> Void) {
        gaugeUpdates.withLock { $0.append(update) }
    }

    /// Every metric in the Prometheus text exposition format (version 0.0.4), gauges updated first.
    public func exposition() -> String {
        for update in gaugeUpdates.withLock({ $0 }) { update() }
        return registry.emitToString()
    }
}
