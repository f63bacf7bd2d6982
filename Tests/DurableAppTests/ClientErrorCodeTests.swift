import DurableClient
import DurableObjects
import DurableWire
import Foundation
import TestSupport
import Testing

/// Throws, for a call to `test/CODE`, an `RPCError` with that code; `test/wait` waits until cancelled.
private final class CodeThrowingHandler: RPCHandler {
    let started = Latch()

    func handle(_ call: IncomingCall) async throws -> [UInt8] {
        let name = String(call.method.dropFirst("test/".count))
        if name == "wait" {
            started.open()
            try await Task.sleep(for: .seconds(3600))
            return []
        }
        throw RPCError(Durable_V1_Code(name: name), "failed with \(name)", retryable: name == "UNAVAILABLE")
    }
}

@Suite("DurableClient reports every wire status code as it came")
struct ClientErrorCodeTests {
    @Test("each status code a server answers reaches the caller with its code, message and flags")
    func everyCode() async throws {
        let handler = CodeThrowingHandler()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler)
        let port = try await server.start()
        let client = DurableClient(host: "127.0.0.1", port: port)
        for code in DurableObjectError.Code.all {
            let error = await #expect(throws: DurableObjectError.self) {
                _ = try await client.callSerialized("test/\(code.name)", payload: [])
            }
            #expect(error?.code == code, "sent \(code), got \(String(describing: error?.code))")
            #expect(error?.message == "failed with \(code.name)")
            #expect(error?.retryable == (code == .unavailable))
        }
        await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
    }

    @Test("a call whose task is cancelled ends with CANCELLED, not INTERNAL")
    func cancelledCall() async throws {
        let handler = CodeThrowingHandler()
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler)
        let port = try await server.start()
        let client = DurableClient(host: "127.0.0.1", port: port)
        let call = Task { try await client.callSerialized("test/wait", payload: []) }
        await handler.started.wait()
        call.cancel()
        let error = await #expect(throws: DurableObjectError.self) { try await call.value }
        #expect(error?.code == .cancelled)
        await client.close()
        await server.shutdown(gracePeriod: .seconds(1))
    }
}
