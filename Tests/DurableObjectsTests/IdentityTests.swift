import DurableObjects
import DurableObjectsTesting
import TestSupport
import Testing

@Suite("Ids and stubs (SEMANTICS §1)")
struct IdentityTests {
    let first = DurableObjectNamespace(
        namespaceID: "a", className: "A", key: .random(), transport: NoTransport())
    let second = DurableObjectNamespace(
        namespaceID: "b", className: "B", key: .random(), transport: NoTransport())

    struct NoTransport: ObjectTransport {
        func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response {
            Response("unused")
        }
    }

    @Test("idFromName is deterministic per namespace and differs across namespaces")
    func namedIDs() {
        #expect(first.idFromName("alice") == first.idFromName("alice"))
        #expect(first.idFromName("alice") != first.idFromName("bob"))
        #expect(first.idFromName("alice") != second.idFromName("alice"))
        #expect(first.idFromName("alice").name == "alice")
    }

    @Test("the id is HMAC(key, name)[0..<16] followed by HMAC(key, first16)[0..<16]")
    func derivation() throws {
        let key = NamespaceKey(secret: Array(repeating: 7, count: 32))
        let id = key.id(forName: "alice")
        // Reference values computed independently (Python's hmac module with the same key).
        #expect(id.hexString == "6a8851c590ddeb5a2ea0a50374798bceb0ef4ca698b71a1de54bf7e72930ebf1")
        #expect(try key.id(fromString: id.hexString) == id)
        let other = NamespaceKey(secret: Array(repeating: 8, count: 32))
        #expect(other.id(forName: "alice") != id)
    }

    @Test("ids print as 64 lowercase hex digits and parse back, without their name")
    func hexRoundTrip() throws {
        let id = first.idFromName("carol")
        let hex = id.hexString
        #expect(hex.count == 64)
        #expect(hex.allSatisfy { "0123456789abcdef".contains($0) })
        #expect("\(id)" == hex)
        let parsed = try first.idFromString(hex)
        #expect(parsed == id)
        #expect(parsed.equals(id))
        #expect(parsed.name == nil)
    }

    @Test("unique ids are distinct, valid in their namespace, and never equal to a named id")
    func uniqueIDs() throws {
        let ids = (0..<1_000).map { _ in first.newUniqueId() }
        #expect(Set(ids).count == ids.count)
        for id in ids.prefix(10) {
            #expect(try first.idFromString(id.hexString) == id)
            #expect(id.name == nil)
        }
        #expect(!ids.contains(first.idFromName("alice")))
    }

    @Test(
        "a string that is not 64 hex digits is refused with the platform's message",
        arguments: [
            "", "abc", String(repeating: "g", count: 64), String(repeating: "a", count: 63),
            String(repeating: "a", count: 65),
        ])
    func malformedStrings(text: String) {
        let error = #expect(throws: DurableObjectError.self) { try first.idFromString(text) }
        #expect(error?.message == "Invalid Durable Object ID: must be 64 hex digits")
        #expect(error?.code == .invalidArgument)
    }

    @Test("an id of another namespace is refused with the platform's message")
    func foreignID() {
        let foreign = second.idFromName("alice").hexString
        let error = #expect(throws: DurableObjectError.self) { try first.idFromString(foreign) }
        #expect(error?.message == "Durable Object ID is not valid for this namespace.")
        let hex = first.idFromName("alice").hexString
        let tampered = String(hex.dropLast()) + (hex.last == "0" ? "1" : "0")
        #expect(throws: DurableObjectError.self) { try first.idFromString(tampered) }
    }

    @Test("a stub reaches its object whatever host the request URL names, and knows its name")
    func stubIgnoresHost() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName("host-test")
            #expect(stub.name == "host-test")
            #expect(try await stub.fetch("https://example.com/increment", method: .post).text() == "1")
            #expect(try await stub.fetch("http://another.host/increment", method: .post).text() == "2")
            #expect(try await stub.fetch("/increment", method: .post).text() == "3")
            let byID = try runtime.namespace("PROBE").get(
                try runtime.namespace("PROBE").idFromString(stub.id.hexString))
            #expect(try await byID.text("/count") == "3")
        }
    }

    @Test("an object can read its own id and name")
    func objectKnowsItsID() async throws {
        try await withRuntime { runtime in
            let stub = try runtime.namespace("PROBE").getByName("self-aware")
            let (id, name) = try await runtime.runInDurableObject(stub, as: Probe.self) { _, state in
                (state.id, state.id.name)
            }
            #expect(id == stub.id)
            #expect(name == "self-aware")
        }
    }

    @Test("an id keeps a name only when the name derives it: a name a caller merely claims is dropped")
    func claimedNames() throws {
        let key = NamespaceKey(secret: Array(repeating: 9, count: 32))
        let alice = key.id(forName: "alice")
        #expect(try key.id(bytes: alice.bytes, name: "alice").name == "alice")
        #expect(try key.id(bytes: alice.bytes, name: "mallory").name == nil)
        #expect(try key.id(bytes: alice.bytes, name: nil).name == nil)
        let unique = key.newUniqueID()
        #expect(try key.id(bytes: unique.bytes, name: "alice").name == nil)
    }

    @Test("a key's recent ids answer as its MACs would: a cached id of one key is still refused by another")
    func recentIDs() throws {
        let key = NamespaceKey(secret: Array(repeating: 7, count: 32))
        let other = NamespaceKey(secret: Array(repeating: 8, count: 32))
        // More names than the cache holds, twice: evicted and cached entries give the same answers.
        for round in 0..<2 {
            for index in stride(from: 0, to: 20_000, by: 7) {
                let name = "object-\(index)"
                let id = key.id(forName: name)
                #expect(id == NamespaceKey(secret: key.secret).id(forName: name), "round \(round)")
                #expect(try key.id(bytes: id.bytes, name: name).name == name)
                #expect(try key.id(bytes: id.bytes, name: "not-\(name)").name == nil)
                #expect(throws: DurableObjectError.self) { try other.verify(id.bytes) }
                var forged = id.bytes
                forged[31] ^= 1
                #expect(throws: DurableObjectError.self) { try key.verify(forged) }
                #expect(throws: DurableObjectError.self) { try key.id(bytes: forged, name: name) }
            }
        }
    }
}
