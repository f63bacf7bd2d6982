@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import DurableStorage
import TestSupport
import Testing

@Suite("Recorded object names and listings for operators")
struct ObjectNameTests {
    @Test("an object reached by name gets its name recorded; by id alone or with a name that is not its own, none")
    func namesRecorded() async throws {
        try await withRuntime { runtime in
            let probes = try runtime.namespace("PROBE")
            let engine = try runtime.runtime
            let database = engine.database
            let named = probes.getByName("alice")
            #expect(try await named.text("/increment") == "1")
            let unique = probes.newUniqueId()
            #expect(try await probes.get(unique).text("/increment") == "1")
            // A caller may send any name beside an id: it is recorded only when it derives the id.
            let key = try #require(engine.namespaceDefinition(probes.namespaceID)).key
            let other = probes.idFromName("bob")
            let misnamed = try key.id(bytes: other.bytes, name: "mallory")
            _ = try await engine.invoke(
                namespaceID: probes.namespaceID, id: misnamed,
                request: Request(url: "http://probe/increment", method: .post))

            func name(_ id: DurableObjectId) throws -> String? {
                try ObjectNames.name(namespaceID: probes.namespaceID, id: id.bytes, database: database)
            }
            #expect(try name(named.id) == "alice")
            #expect(try name(unique) == nil)
            #expect(try name(other) == nil)
            // Reached by its real name later, it is recorded with its next write.
            #expect(try runtime.evict(probes.get(other)))
            #expect(try await probes.get(probes.idFromName("bob")).text("/count") == "1")
            #expect(try name(other) == nil, "a read writes nothing")
            #expect(try await probes.get(probes.idFromName("bob")).text("/increment") == "2")
            #expect(try name(other) == "bob")

            // Dropping the namespace removes its names with its data.
            try engine.dropNamespace(probes.namespaceID)
            #expect(try name(named.id) == nil)
            #expect(try name(other) == nil)
        }
    }

    @Test("an object reached by name that never writes leaves nothing on disk")
    func readOnlyLeavesNothing() async throws {
        try await withRuntime { runtime in
            let probes = try runtime.namespace("PROBE")
            let engine = try runtime.runtime
            let database = engine.database
            let reader = probes.getByName("only-reads")
            #expect(try await reader.text("/count") == "0")
            #expect(try await reader.text("/instance") == "1")
            #expect(try runtime.evict(reader))
            #expect(
                try ObjectNames.name(namespaceID: probes.namespaceID, id: reader.id.bytes, database: database) == nil)
            #expect(try runtime.listDurableObjectIds(probes).isEmpty)
            // Nothing in the node's metadata names the object either.
            var rows: [String] = []
            try database.forEach(in: database.defaultColumnFamily, ScanOptions()) { key, _ in
                let text = String(decoding: key, as: UTF8.self)
                if text.contains(reader.id.hexString) { rows.append(text) }
                return true
            }
            #expect(rows.isEmpty, "\(rows)")
        }
    }

    @Test("listing ids pages by `after` and `limit`, in byte order, without activating anything")
    func pagedListing() async throws {
        try await withRuntime { runtime in
            let probes = try runtime.namespace("PROBE")
            let engine = try runtime.runtime
            for name in ["a", "b", "c", "d", "e"] { _ = try await probes.getByName(name).text("/increment") }
            for name in ["a", "b", "c", "d", "e"] { #expect(try runtime.evict(probes.getByName(name))) }
            let all = try engine.objectIDs(inNamespace: probes.namespaceID)
            #expect(all.count == 5)
            #expect(all.map(\.hexString) == all.map(\.hexString).sorted())
            let first = try engine.objectIDs(inNamespace: probes.namespaceID, limit: 2)
            let rest = try engine.objectIDs(inNamespace: probes.namespaceID, after: first.last!.bytes, limit: 10)
            #expect(first + rest == all)
            #expect(try engine.objectIDs(inNamespace: probes.namespaceID, after: all.last!.bytes).isEmpty)
            #expect(engine.activeCount == 0)
        }
    }
}
