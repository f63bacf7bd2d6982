@_spi(Testing) import DurableObjects
import DurableObjectsTesting
import DurableStorage
import TestSupport
import Testing

/// The rows of a placement slot, as a slot move copies them: exported at one snapshot with a checksum, written on
/// another node, answering there as they did, and deleted from the old owner.
@Suite("Slot rows: export, import, delete")
struct SlotRowsTests {
    @Test("the 16 id prefixes of a slot are exactly the ids whose slot it is")
    func prefixes() {
        for slot: UInt16 in [0, 1, 2047, 4095] {
            let prefixes = SlotKeyspace.idPrefixes(of: slot)
            #expect(prefixes.count == 16 && Set(prefixes).count == 16)
            for prefix in prefixes {
                // An id's slot: its first two bytes, big-endian, modulo 4096.
                #expect((Int(prefix[0]) << 8 | Int(prefix[1])) % PlacementEpochs.slotCount == Int(slot))
            }
        }
        #expect(SlotKeyspace.hexPrefixes(of: 1).first == "0001")
        #expect(SlotKeyspace.hexPrefixes(of: 1).last == "f001")
    }

    @Test("a slot's rows move to another runtime with the same checksum and answer there; the old copy is deleted")
    func exportImportDelete() async throws {
        try await withRuntime { source in
            // The target serves the same namespace with the same secret (nodes get both from the registry).
            let folder = TemporaryDirectory("slot-rows-target")
            let secretKey = Array("\(NodeKeyspace.testRuntime)namespace-secret/Probe".utf8)
            let sourceDatabase = try source.runtime.database
            let secret = try #require(try sourceDatabase.get(secretKey, in: try sourceDatabase.defaultColumnFamily))
            do {
                let seeded = try Database(path: folder.path)
                var batch = WriteBatch()
                batch.put(secret, forKey: secretKey, in: try seeded.defaultColumnFamily)
                try seeded.write(batch, sync: true)
                seeded.close()
            }
            let target = try DurableTestRuntime(
                classes: [DurableObjectClass(Probe.self)], bindings: ["PROBE": "Probe"], directory: folder.path)
            do {
                try await moveSlot(from: source, to: target)
            } catch {
                await target.close()
                throw error
            }
            await target.close()
        }
    }

    /// Moves a slot of three objects from `source` to `target` and checks every step.
    private func moveSlot(from source: DurableTestRuntime, to target: DurableTestRuntime) async throws {
        let probes = try source.namespace("PROBE")
        // Objects in one slot (and one in another, which must not move).
        let first = probes.getByName("mover-0")
        let slot = PlacementEpochs.slot(of: first.id)
        var movers = [first]
        var index = 1
        while movers.count < 3 {
            let stub = probes.getByName("mover-\(index)")
            if PlacementEpochs.slot(of: stub.id) == slot { movers.append(stub) }
            index += 1
        }
        let stayer = probes.getByName("stayer")
        #expect(PlacementEpochs.slot(of: stayer.id) != slot)
        for (offset, stub) in movers.enumerated() {
            _ = try await stub.text("/put", body: "value \(offset)")
            for _ in 0...offset { _ = try await stub.text("/increment") }
        }
        _ = try await stayer.text("/put", body: "stays")

        let engine = try source.runtime
        var batches: [[SlotRow]] = []
        let exported = try engine.exportRows(ofSlot: slot, batchSize: 2) { batches.append($0) }
        #expect(exported.objects == 3)
        #expect(exported.rows == batches.joined().count && batches.allSatisfy { $0.count <= 2 })
        #expect(batches.joined().contains { $0.family.isEmpty }, "the names recorded with the objects move too")
        #expect(!batches.joined().contains { String(decoding: $0.key, as: UTF8.self).contains("stayer") })

        let receiver = try target.runtime
        for batch in batches { try await receiver.importRows(batch) }
        let imported = try receiver.exportRows(ofSlot: slot) { _ in }
        #expect(imported == exported, "the same rows, in the same order, on the new owner")
        for (offset, stub) in movers.enumerated() {
            let request = Request(url: "http://probe/x", method: .post)
            let value = try await receiver.invoke(namespaceID: probes.namespaceID, id: stub.id, request: request)
            #expect(value.text() == "value \(offset)")
            let count = try await receiver.invoke(
                namespaceID: probes.namespaceID, id: stub.id, request: Request(url: "http://probe/count"))
            #expect(count.text() == "\(offset + 1)")
        }

        // Deleting needs the slot's objects retired first.
        await #expect(throws: DurableObjectError.self) { try await engine.deleteRows(ofSlot: slot) }
        for stub in movers { #expect(try source.evict(stub)) }
        try await engine.deleteRows(ofSlot: slot)
        let left = try engine.exportRows(ofSlot: slot) { _ in }
        #expect(left.rows == 0 && left.objects == 0)
        #expect(try await stayer.text("/x") == "stays", "other slots keep their data")

        // A row that belongs to no object, or to a namespace not served here, is refused.
        await #expect(throws: DurableObjectError.self) {
            try await receiver.importRows([SlotRow(family: "", key: Array("node/identity".utf8), value: [1])])
        }
        await #expect(throws: DurableObjectError.self) {
            try await receiver.importRows([
                SlotRow(family: "ns:Elsewhere", key: [UInt8](repeating: 1, count: 33), value: [1])
            ])
        }
    }
}

extension SlotRowsTests {
    @Test("slot usage counts each slot's objects and the bytes of their keys and values")
    func usage() async throws {
        try await withRuntime { runtime in
            let probes = try runtime.namespace("PROBE")
            let names = (0..<20).map { "usage-\($0)" }
            for name in names { _ = try await probes.getByName(name).text("/put", body: "0123456789") }
            let usage = try runtime.runtime.slotUsage()
            var expected: [UInt16: Int] = [:]
            for name in names { expected[PlacementEpochs.slot(of: probes.idFromName(name)), default: 0] += 1 }
            #expect(usage.mapValues(\.objects) == expected)
            // One key "x" per object: 32 id bytes + 1 key byte + the stored value.
            #expect(usage.values.allSatisfy { $0.bytes > $0.objects * 33 })
        }
    }
}
