import DurableClient
import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import TestSupport
import Testing

extension ProcessTests {
    @Suite("Distributed tracing across a real gateway and node (OTLP/HTTP)")
    struct TracingProcessTests {
        static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
        static let callerSpanID = "00f067aa0ba902b7"
        static let unsampledTraceID = "5bf92f3577b34da6a3ce929d0e0e4737"

        @Test(
            "one HTTP request through the bridge is one trace: a span per hop in two processes, parents linked across them, timings nested; a request its caller did not sample is recorded nowhere"
        )
        func oneTraceAcrossProcesses() async throws {
            let receiver = try await OTLPReceiver.start()
            defer { Task { await receiver.close() } }
            let tracing = ["--otel-endpoint", receiver.endpoint, "--otel-protocol", "http/json"]
            var wallTime = Duration.zero
            try await withTestCluster(
                nodes: 1, label: "tracing", nodeArguments: tracing, gatewayArguments: tracing
            ) { cluster in
                let web = "http://127.0.0.1:\(try #require(try cluster.gateway.httpPort))"
                // First a request whose caller did not sample its trace: no process records any of it.
                let unsampled = try await HTTPTestClient.send(
                    web + "/counter/increment",
                    headers: ["traceparent": "00-\(Self.unsampledTraceID)-\(Self.callerSpanID)-00"])
                #expect(unsampled.text == "Durable Object 'A' count: 1")
                let started = ContinuousClock.now
                let answer = try await HTTPTestClient.send(
                    web + "/counter/increment",
                    headers: ["traceparent": "00-\(Self.traceID)-\(Self.callerSpanID)-01"])
                wallTime = .now - started
                #expect(answer.text == "Durable Object 'A' count: 2")
            }
            // Both processes stopped gracefully, which flushes their spans to the receiver.
            let expected = [
                "HTTP GET", "durable.object.call", "durable.gateway.route", "durable.node.invoke",
                "durable.object.queue_wait", "durable.object.turn", "durable.storage.flush",
            ]
            #expect(
                await eventually { Set(receiver.spans.map(\.name)).isSuperset(of: expected) },
                "spans received: \(receiver.spans)")
            #expect(receiver.decodingFailures.isEmpty)
            let spans = receiver.spans
            // One trace: the caller's, continued from its traceparent header, and no other (the unsampled request's
            // spans would have been flushed too, at the same shutdown).
            #expect(
                spans.allSatisfy { $0.traceID.lowercased() == Self.traceID || $0.traceID == Self.base64(Self.traceID) })
            let byName = Dictionary(grouping: spans, by: \.name)
            for name in expected { #expect(byName[name]?.count == 1, "\(name): \(byName[name] ?? [])") }
            func span(_ name: String) throws -> OTLPReceiver.ReceivedSpan { try #require(byName[name]?.first) }

            let http = try span("HTTP GET")
            let call = try span("durable.object.call")
            let route = try span("durable.gateway.route")
            let invoke = try span("durable.node.invoke")
            let queueWait = try span("durable.object.queue_wait")
            let turn = try span("durable.object.turn")
            let flush = try span("durable.storage.flush")

            // Two processes: the bridge, the stub and the route in the gateway; the rest in the node.
            for gatewaySpan in [http, call, route] { #expect(gatewaySpan.service == "durable-gateway") }
            for nodeSpan in [invoke, queueWait, turn, flush] { #expect(nodeSpan.service == "durable-node") }

            // Parents: the chain of hops, across the process boundary between the route and the invocation.
            #expect(Self.sameID(http.parentSpanID, Self.callerSpanID))
            #expect(call.parentSpanID == http.spanID)
            #expect(route.parentSpanID == call.spanID)
            #expect(invoke.parentSpanID == route.spanID)
            for child in [queueWait, turn, flush] { #expect(child.parentSpanID == invoke.spanID) }
            let ids = Set(spans.map(\.spanID))
            for child in spans where child.spanID != http.spanID {
                #expect(child.parentSpanID.map(ids.contains) == true, "\(child) has no parent in the trace")
            }

            // Attributes.
            #expect(http.attributes["http.request.method"] == "GET")
            #expect(http.attributes["url.path"] == "/counter/increment")
            #expect(http.attributes["http.response.status_code"] == "200")
            #expect(call.attributes["durable.class"] == "Counter")
            #expect(route.attributes["durable.node"] == "node1")
            #expect(invoke.attributes["durable.node"] == "node1")
            #expect(invoke.attributes["rpc.method"] == "durable.v1.Objects/Invoke")
            #expect(turn.attributes["durable.class"] == "Counter")
            let objectID = try #require(call.attributes["durable.object_id"])
            for objectSpan in [route, invoke, queueWait, turn, flush] {
                #expect(objectSpan.attributes["durable.object_id"] == objectID)
            }
            #expect(http.kind == 2 && invoke.kind == 2 && call.kind == 3)

            // Timings: every span lasts, lasts less than the request took (plus slack for the clocks), and lies
            // within its parent (the processes share the machine's clock; a little slack across them).
            let slack: UInt64 = 2_000_000
            for each in spans {
                #expect(each.end > each.start, "\(each)")
                #expect(each.duration < wallTime + .milliseconds(50), "\(each) outlasts the request (\(wallTime))")
                guard let parent = spans.first(where: { $0.spanID == each.parentSpanID }) else { continue }
                let margin = parent.service == each.service ? 0 : slack
                #expect(each.start + margin >= parent.start, "\(each) starts before its parent \(parent)")
                #expect(each.end <= parent.end + margin, "\(each) ends after its parent \(parent)")
            }
            // The queue wait comes before the turn, the turn before the flush.
            #expect(queueWait.end <= turn.start)
            #expect(turn.end <= flush.start)
        }

        @Test(
            "an RPC invocation that carries a traceparent continues its trace through the gateway's relay and the node"
        )
        func rpcCallerTrace() async throws {
            let receiver = try await OTLPReceiver.start()
            defer { Task { await receiver.close() } }
            let tracing = ["--otel-endpoint", receiver.endpoint, "--otel-protocol", "http/json"]
            try await withTestCluster(
                nodes: 1, label: "tracing-rpc", nodeArguments: tracing, gatewayArguments: tracing
            ) { cluster in
                let client = DurableClient(host: "127.0.0.1", port: try cluster.gateway.port, credentials: TestKeys.api)
                let counters = try await client.namespace("COUNTER")
                var message = Durable_V1_InvokeRequest()
                message.namespaceID = counters.namespaceID
                message.objectName = "rpc"
                message.request = Request(url: "http://counter/increment").wire
                // Twice: the first call may wait for the slot's announcement (relayed in a task), the second is
                // relayed without one. Each with its own trace.
                for traceID in [Self.rpcTraceIDs.0, Self.rpcTraceIDs.1] {
                    let reply = try await client.callSerialized(
                        Methods.invoke, payload: try message.serializedBytes(),
                        metadata: ["traceparent": "00-\(traceID)-\(Self.callerSpanID)-01"])
                    #expect(try Durable_V1_InvokeResponse(serializedBytes: reply).response.status == 200)
                }
                await client.close()
            }
            for traceID in [Self.rpcTraceIDs.0, Self.rpcTraceIDs.1] {
                let expected: Set = [
                    "durable.gateway.route", "durable.node.invoke", "durable.object.queue_wait", "durable.object.turn",
                    "durable.storage.flush",
                ]
                func trace() -> [OTLPReceiver.ReceivedSpan] {
                    receiver.spans.filter { $0.traceID.lowercased() == traceID || $0.traceID == Self.base64(traceID) }
                }
                #expect(
                    await eventually { Set(trace().map(\.name)).isSuperset(of: expected) }, "\(receiver.spans)")
                let spans = trace()
                let route = try #require(spans.first { $0.name == "durable.gateway.route" })
                let invoke = try #require(spans.first { $0.name == "durable.node.invoke" })
                #expect(route.service == "durable-gateway" && route.kind == 2)
                #expect(Self.sameID(route.parentSpanID, Self.callerSpanID))
                #expect(route.attributes["durable.node"] == "node1")
                #expect(invoke.service == "durable-node" && invoke.parentSpanID == route.spanID)
                for name in ["durable.object.queue_wait", "durable.object.turn", "durable.storage.flush"] {
                    #expect(spans.first { $0.name == name }?.parentSpanID == invoke.spanID, "\(name)")
                }
                #expect(spans.allSatisfy { $0.end > $0.start })
            }
        }

        @Test(
            "a trace the gateway's root sampler does not record is recorded nowhere: the node, sampling everything it starts, follows the gateway's decision (with keys: no trace context on the wire; --insecure: a traceparent with flags 00)",
            arguments: [false, true])
        func rootDecisionFollowed(insecure: Bool) async throws {
            let receiver = try await OTLPReceiver.start()
            defer { Task { await receiver.close() } }
            let tracing = ["--otel-endpoint", receiver.endpoint, "--otel-protocol", "http/json"]
            if insecure {
                let folder = TemporaryDirectory("tracing-insecure")
                let gateway = try await ServerProcess.launch(
                    [
                        "gateway", "--rpc-port", "0", "--port", "0", "--data", folder.child("gateway"), "--log-level",
                        "warning", "--insecure", "--trace-sampling", "0",
                    ] + tracing,
                    dataDirectory: folder.child("gateway"), keys: false)
                let node = try await ServerProcess.launch(
                    [
                        "node", "--port", "0", "--data", folder.child("node"), "--log-level", "warning", "--node-id",
                        "node1", "--gateway", "127.0.0.1:\(gateway.port)", "--insecure", "--trace-sampling", "1",
                    ]
                        + tracing,
                    dataDirectory: folder.child("node"), keys: false)
                try await Self.callsStartingTraces(
                    rpcPort: gateway.port, httpPort: try #require(gateway.httpPort), credentials: nil)
                #expect(await node.stop() == 0)
                #expect(await gateway.stop() == 0)
            } else {
                try await withTestCluster(
                    nodes: 1, label: "tracing-root", nodeArguments: tracing + ["--trace-sampling", "1"],
                    gatewayArguments: tracing + ["--trace-sampling", "0"]
                ) { cluster in
                    try await Self.callsStartingTraces(
                        rpcPort: try cluster.gateway.port, httpPort: try #require(try cluster.gateway.httpPort),
                        credentials: TestKeys.api)
                }
            }
            // Both processes stopped gracefully, which flushed every span they had to the receiver.
            #expect(
                await eventually { receiver.spans.contains { $0.name == "durable.node.invoke" } }, "\(receiver.spans)")
            #expect(
                receiver.spans.allSatisfy { Self.sameID($0.traceID, Self.traceID) },
                "spans of traces the gateway did not sample: \(receiver.spans.filter { !Self.sameID($0.traceID, Self.traceID) })"
            )
        }

        /// Calls through the gateway without a traceparent (they start their traces there), over HTTP and over RPC
        /// (relayed in a task, the slot's first call, and then without one), and a last call its caller did sample:
        /// that one is recorded, so that nothing recorded from the others is not a broken exporter.
        static func callsStartingTraces(rpcPort: Int, httpPort: Int, credentials: RPCKey?) async throws {
            let answer = try await HTTPTestClient.send("http://127.0.0.1:\(httpPort)/counter/increment")
            #expect(answer.text == "Durable Object 'A' count: 1")
            let client = DurableClient(host: "127.0.0.1", port: rpcPort, credentials: credentials)
            let counters = try await client.namespace("COUNTER")
            var message = Durable_V1_InvokeRequest()
            message.namespaceID = counters.namespaceID
            message.objectName = "root"
            message.request = Request(url: "http://counter/increment").wire
            for _ in 0..<3 {
                let reply = try await client.callSerialized(Methods.invoke, payload: try message.serializedBytes())
                #expect(try Durable_V1_InvokeResponse(serializedBytes: reply).response.status == 200)
            }
            let reply = try await client.callSerialized(
                Methods.invoke, payload: try message.serializedBytes(),
                metadata: ["traceparent": "00-\(Self.traceID)-\(Self.callerSpanID)-01"])
            #expect(try Durable_V1_InvokeResponse(serializedBytes: reply).response.status == 200)
            await client.close()
        }

        static let rpcTraceIDs = ("6bf92f3577b34da6a3ce929d0e0e4738", "7bf92f3577b34da6a3ce929d0e0e4739")

        /// An id as hex, or as base64 when the exporter writes protobuf's JSON mapping of bytes.
        static func base64(_ hex: String) -> String {
            var bytes: [UInt8] = []
            var index = hex.startIndex
            while index < hex.endIndex {
                let next = hex.index(index, offsetBy: 2)
                bytes.append(UInt8(hex[index..<next], radix: 16)!)
                index = next
            }
            return Data(bytes).base64EncodedString()
        }

        static func sameID(_ received: String?, _ hex: String) -> Bool {
            received?.lowercased() == hex || received == base64(hex)
        }
    }
}
