import DurableMetrics
@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import TestSupport
import Testing

@Suite("Metrics of an object runtime (swift-metrics into a Prometheus registry)")
struct MetricsTests {
    /// A runtime serving ``Probe`` whose metrics go to `metrics` alone.
    func configuration(_ metrics: MetricsRegistry, mailbox: MailboxLimits = MailboxLimits()) -> RuntimeConfiguration {
        RuntimeConfiguration(mailbox: mailbox, idleTimeout: .seconds(60), metricsFactory: metrics.factory())
    }

    /// Calls the object `name` straight through the runtime, not through a binding: the test's own calls are no
    /// subrequests (a test runtime's stubs go through the objects' bindings).
    func call(_ runtime: DurableTestRuntime, _ name: String, _ path: String, body: String = "") async throws -> String {
        let probe = try runtime.namespace("PROBE")
        return try await runtime.runtime.invoke(
            namespaceID: probe.namespaceID, id: probe.idFromName(name),
            request: Request(url: "http://probe\(path)", method: .post, body: .text(body))
        ).text()
    }

    func scrape(_ metrics: MetricsRegistry) throws -> PrometheusScrape {
        try PrometheusScrape(metrics.exposition())
    }

    @Test("invocations, storage reads and writes, group commits and subrequests move with traffic")
    func traffic() async throws {
        let metrics = MetricsRegistry()
        let bystander = MetricsRegistry()
        try await withRuntime(configuration(metrics)) { runtime in
            // A second runtime in the same process, with its own registry, sees none of the first one's figures.
            try await withRuntime(configuration(bystander)) { other in
                _ = try await other.namespace("PROBE").getByName(uniqueName()).text("/instance")
            }
            let before = try scrape(metrics)
            #expect(before.sum("durable_object_invocations_total") == 0)
            let name = uniqueName()
            for expected in 1...5 { #expect(try await call(runtime, name, "/increment") == "\(expected)") }
            #expect(try await call(runtime, name, "/put-then-call", body: uniqueName("callee")) == "logged")

            let after = try scrape(metrics)
            let probe = ["class": "Probe", "namespace": "Probe"]
            // Five increments, the call that makes a subrequest, and the subrequest itself.
            #expect(after.sum("durable_object_invocations_total", probe.merging(["outcome": "ok"]) { $1 }) == 7)
            #expect(after.sum("durable_object_invocation_duration_seconds_count", ["outcome": "ok"]) == 7)
            #expect(after.sum("durable_object_invocations_total", ["outcome": "error"]) == 0)
            #expect(after.sum("durable_subrequests_total", ["class": "Probe", "outcome": "ok"]) == 1)
            #expect(after.sum("durable_subrequest_duration_seconds_count") == 1)
            // Each increment reads and writes `count`; the call writes `x` once.
            #expect(after.sum("durable_storage_reads_total", probe) == 5)
            #expect(after.sum("durable_storage_writes_total", probe) == 6)
            let bytes = after.sum("durable_storage_written_bytes_total", probe)
            #expect(bytes >= Double(6 * "count".utf8.count), "written bytes: \(bytes)")
            // Every write flushed in a group commit of its own turn: at least six batches, each sync timed.
            let syncs = after.sum("durable_group_commit_batches_per_sync_count")
            let batches = after.sum("durable_group_commit_batches_per_sync_sum")
            #expect(syncs >= 1 && batches >= 6, "syncs \(syncs), batches \(batches)")
            #expect(after.sum("durable_group_commit_sync_duration_seconds_count") == syncs)
            #expect(after.sum("durable_group_commit_synced_bytes_total") >= bytes)
            // The bystander saw its own invocation only.
            #expect(try scrape(bystander).sum("durable_object_invocations_total") == 1)
        }
    }

    @Test("a queue of one that overflows counts an overload rejection; gauges show queued events and live objects")
    func overload() async throws {
        let metrics = MetricsRegistry()
        try await withRuntime(configuration(metrics, mailbox: MailboxLimits(maxQueuedRequests: 1))) { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            let tag = uniqueName("overload")
            let blocker = Task { try await stub.text("/block?tag=\(tag)", body: "blocker") }
            #expect(await eventually { Board.entries(tag) == ["ran blocker"] })
            let queued = Task { try await stub.text("/log?tag=\(tag)", body: "queued") }
            #expect(await eventually { (try? runtime.queuedCount(stub)) == 1 })
            let refused = await Result { try await stub.text("/log?tag=\(tag)", body: "refused") }
            #expect(throws: DurableObjectError.tooManyRequestsQueued) { try refused.get() }

            try runtime.runtime.updateGauges()
            let during = try scrape(metrics)
            #expect(during.sum("durable_object_queued_events") == 1)
            #expect(during.sum("durable_active_objects") == 1)
            #expect(
                during.sum("durable_object_overload_rejections_total", ["reason": "too_many_requests_queued"]) == 1)
            #expect(during.sum("durable_object_overload_rejections_total") == 1)
            #expect(during.sum("durable_object_invocations_total", ["outcome": "overloaded"]) == 1)

            Board.latch(tag).open()
            _ = try await blocker.value
            _ = try await queued.value
            #expect(try runtime.evict(stub))
            try runtime.runtime.updateGauges()
            let after = try scrape(metrics)
            #expect(after.sum("durable_object_queued_events") == 0)
            #expect(after.sum("durable_active_objects") == 0)
            #expect(after.sum("durable_object_evictions_total") == 1)
            #expect(after.sum("durable_object_invocations_total", ["outcome": "ok"]) == 2)
        }
    }
}
