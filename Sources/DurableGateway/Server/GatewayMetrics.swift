import CoreMetrics
import DurableClient
import DurableObjects
import DurableWire

/// The figures a ``Gateway`` reports through swift-metrics (the factory of its
/// ``GatewayConfiguration/metricsFactory``): the invocations it forwards to each node, with their outcome and
/// latency, and the client WebSockets it holds.
struct GatewayMetrics: Sendable {
    /// The metric names, for dashboards and tests.
    enum Name {
        static let forwardedCalls = "durable_gateway_forwarded_calls_total"
        static let forwardedCallDuration = "durable_gateway_forwarded_call_duration_seconds"
        static let openWebSockets = "durable_gateway_open_websockets"
        static let nodes = "durable_gateway_nodes"
    }

    let factory: any MetricsFactory
    let openWebSockets: Gauge
    let nodes: Gauge

    init(factory: any MetricsFactory) {
        self.factory = factory
        openWebSockets = Gauge(label: Name.openWebSockets, dimensions: [], factory: factory)
        nodes = Gauge(label: Name.nodes, dimensions: [], factory: factory)
    }

    /// The count and latency of invocations forwarded to `nodeID`: made once per node connection.
    func forwarding(to nodeID: String) -> CallMetrics {
        CallMetrics(
            calls: Name.forwardedCalls, duration: Name.forwardedCallDuration, dimensions: [("node", nodeID)],
            factory: factory)
    }

    /// The outcome of a forwarded call that failed with `error` (the node's status, or the gateway's own).
    static func outcome(_ error: any Error) -> CallOutcome {
        if let error = error as? RPCError { return CallOutcome(DurableObjectError(error)) }
        return CallOutcome(error)
    }
}
