import DurableObjects
import DurableWire
import Foundation
import Testing

@testable import DurableGateway

@Suite("The gateway reads an invocation's routing fields without decoding it")
struct InvokeTargetTests {
    private func request(namespace: String, id: [UInt8] = [], name: String = "", body: String = "hello")
        -> Durable_V1_InvokeRequest
    {
        var message = Durable_V1_InvokeRequest()
        message.namespaceID = namespace
        message.objectID = Data(id)
        message.objectName = name
        message.request.method = "POST"
        message.request.url = "https://do/increment"
        message.request.body = Data(body.utf8)
        var header = Durable_V1_Header()
        header.name = "content-type"
        header.value = "text/plain"
        message.request.headers = [header]
        return message
    }

    @Test("the scan finds what the full decode finds, and skips the request")
    func scanMatchesDecode() throws {
        let key = NamespaceKey.random()
        for message in [
            request(namespace: "COUNTER", name: "alice"),
            request(namespace: "ns-Ω", id: key.id(forName: "bob").bytes),
            request(
                namespace: "n", id: key.newUniqueID().bytes, name: "claimed", body: String(repeating: "x", count: 300)),
            Durable_V1_InvokeRequest(),
        ] {
            let bytes: [UInt8] = try message.serializedBytes()
            #expect(try InvokeTarget(scanning: bytes) == InvokeTarget(message))
        }
    }

    @Test("the routing fields appended by the gateway replace the caller's, as a decode of the result shows")
    func routedBytesDecode() throws {
        let key = NamespaceKey.random()
        let id = key.id(forName: "alice")
        let byName: [UInt8] = try request(namespace: "COUNTER", name: "alice").serializedBytes()
        for epoch: UInt64 in [0, 1, 127, 128, 300, UInt64.max] {
            let routed = try InvokeTarget(scanning: byName).routed(byName, id: id, epoch: epoch)
            let decoded = try Durable_V1_InvokeRequest(serializedBytes: routed)
            #expect(decoded.objectID == Data(id.bytes))
            #expect(decoded.placementEpoch == epoch)
            #expect(decoded.objectName == "alice")
            #expect(decoded.request.body == Data("hello".utf8))
        }
        // A caller that sent the id keeps it; a stale epoch it sent is replaced.
        var withID = request(namespace: "COUNTER", id: id.bytes)
        withID.placementEpoch = 99
        let bytes: [UInt8] = try withID.serializedBytes()
        let routed = try InvokeTarget(scanning: bytes).routed(bytes, id: id, epoch: 5)
        #expect(routed.count == bytes.count + 2)
        #expect(try Durable_V1_InvokeRequest(serializedBytes: routed).placementEpoch == 5)
    }

    @Test("malformed encodings are refused with what is wrong")
    func malformed() throws {
        let valid: [UInt8] = try request(namespace: "COUNTER", name: "alice").serializedBytes()
        let cases: [([UInt8], String)] = [
            (Array(valid.dropLast()), "claims"),
            ([0x0A, 0x02, 0xC3, 0x28], "namespace_id is not valid UTF-8"),
            ([0x08, 0x01], "field 1 is not a varint"),
            ([0x00], "field number 0"),
            ([0x0B], "wire type 3"),
            ([0x28, 0xFF], "truncated or overlong varint"),
            ([0x29, 0x01, 0x02], "truncated field 5"),
        ]
        for (bytes, expected) in cases {
            let error = #expect(throws: InvokeTarget.ScanError.self) { try InvokeTarget(scanning: bytes) }
            #expect(error?.description.contains(expected) == true, "\(bytes): \(String(describing: error))")
        }
    }
}
