import DurableExamples
import DurableObjects
import DurableObjectsTesting
import Testing

/// Runs `body` with the example app's classes served in process.
func withExampleApp<T>(_ body: (DurableTestRuntime) async throws -> T) async throws -> T {
    let runtime = try DurableTestRuntime(classes: ExampleApp.classes, bindings: ExampleApp.bindings)
    do {
        let value = try await body(runtime)
        await runtime.close()
        return value
    } catch {
        await runtime.close()
        throw error
    }
}

@Suite("Counter example")
struct CounterTests {
    @Test("increment, decrement and read the value")
    func counts() async throws {
        try await withExampleApp { runtime in
            let counter = try runtime.namespace("COUNTER").getByName("A")
            #expect(try await counter.fetch("http://counter/increment").text() == "1")
            #expect(try await counter.fetch("http://counter/increment").text() == "2")
            #expect(try await counter.fetch("http://counter/decrement").text() == "1")
            #expect(try await counter.fetch("http://counter/").text() == "1")
            let stored = try await runtime.runInDurableObject(counter, as: Counter.self) { _, state in
                try await state.storage.get("value", as: Int.self)
            }
            #expect(stored == 1)
        }
    }

    @Test("other paths answer 404 Not found")
    func notFound() async throws {
        try await withExampleApp { runtime in
            let response = try await runtime.namespace("COUNTER").getByName("A").fetch("http://counter/nope")
            #expect(response.status == .notFound)
            #expect(response.text() == "Not found")
        }
    }

    @Test("counters with different names are different objects, and keep their values across a restart")
    func separateAndDurable() async throws {
        try await withExampleApp { runtime in
            let namespace = try runtime.namespace("COUNTER")
            _ = try await namespace.getByName("A").fetch("http://counter/increment")
            _ = try await namespace.getByName("B").fetch("http://counter/decrement")
            try await runtime.restart()
            #expect(try await namespace.getByName("A").fetch("http://counter/").text() == "1")
            #expect(try await namespace.getByName("B").fetch("http://counter/").text() == "-1")
            #expect(
                Set(try runtime.listDurableObjectIds(namespace)) == [
                    namespace.idFromName("A"), namespace.idFromName("B"),
                ])
        }
    }
}

@Suite("DurableObjectExample")
struct DurableObjectExampleTests {
    @Test("stores the body under the caller's IP and says so")
    func storesUnderIP() async throws {
        try await withExampleApp { runtime in
            let stub = try runtime.namespace("EXAMPLE").getByName("example")
            let response = try await stub.fetch(
                "http://example/", method: .post, headers: [HTTPField.Name("CF-Connecting-IP")!: "203.0.113.7"],
                body: .text("hello"))
            #expect(response.text() == "203.0.113.7 stored hello")
            let stored = try await runtime.runInDurableObject(stub, as: DurableObjectExample.self) { _, state in
                try await state.storage.get("203.0.113.7", as: String.self)
            }
            #expect(stored == "hello")
        }
    }
}
