@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import DurableStorage
import TestSupport
import Testing

@Suite("The node's bookkeeping rows")
struct NodeKeyspaceTests {
    @Test("no prefix begins another, so a scan of one kind never meets another")
    func prefixesApart() {
        for first in NodeKeyspace.all {
            for second in NodeKeyspace.all where first != second {
                #expect(!second.hasPrefix(first), "\(second) begins with \(first)")
            }
        }
    }

    @Test("every row the runtime keeps beside the objects' data is under one of the prefixes")
    func everyRowHasAPrefix() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName(uniqueName())
            #expect(try await stub.text("/put", body: "v") == "stored")
            try await runtime.runInDurableObject(stub, as: Probe.self) { _, state throws in
                _ = try state.acceptWebSocket(upgrade("keyspace-socket"), tags: ["t"])
                state.setWebSocketAutoResponse(request: "ping", response: "pong")
            }
            let database = try runtime.runtime.database
            let rows = try database.scan(in: try database.defaultColumnFamily, ScanOptions()).map {
                String(decoding: $0.key, as: UTF8.self)
            }
            #expect(rows.contains { $0.hasPrefix(NodeKeyspace.name) }, "the name row: \(rows)")
            #expect(rows.contains { $0.hasPrefix(NodeKeyspace.socket) }, "the socket row: \(rows)")
            #expect(rows.contains { $0.hasPrefix(NodeKeyspace.autoResponse) }, "the automatic reply: \(rows)")
            for row in rows {
                #expect(NodeKeyspace.all.contains { row.hasPrefix($0) }, "\(row) has no known prefix")
            }
        }
    }
}
