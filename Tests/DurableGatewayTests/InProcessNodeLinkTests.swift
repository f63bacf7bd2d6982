import DurableGateway
import DurableWire
import Synchronization
import TestSupport
import Testing

/// The in-process link (what `durable dev` and in-process clusters use to reach their nodes) behaves as the TCP
/// link does: statuses pass unchanged, deadlines and cancellation answer at once and stop the node's work, streams
/// arrive in order, and a server that shuts down refuses new calls and waits for running ones.
@Suite("In-process node link")
struct InProcessNodeLinkTests {
    private func link(_ handler: TestHandler) -> (RPCServer, InProcessNodeLink) {
        let server = RPCServer(host: "127.0.0.1", port: 0, handler: handler)
        return (server, InProcessNodeLink(handler: server.inProcessHandler))
    }

    @Test("a reply and a status come back as the handler gave them")
    func repliesAndStatuses() async throws {
        let (_, link) = link(TestHandler())
        #expect(try await link.callSerialized("test/echo", payload: [1, 2, 3], timeout: nil) == [1, 2, 3])
        #expect(try await link.callSerialized("test/echo", payload: [4], timeout: .seconds(30)) == [4])
        let failure = await Result { try await link.callSerialized("test/fail", payload: [], timeout: .seconds(30)) }
        let error = try #require(failure.failureValue as? RPCError)
        #expect(error.code == .resourceExhausted && error.message == "too busy" && error.retryable && error.overloaded)
    }

    @Test("past its deadline a call answers DEADLINE_EXCEEDED and the node's work is cancelled")
    func deadline() async throws {
        let handler = TestHandler()
        let (_, link) = link(handler)
        let failure = await Result {
            try await link.callSerialized("test/wait", payload: [], timeout: .milliseconds(50))
        }
        #expect((failure.failureValue as? RPCError)?.code == .deadlineExceeded)
        #expect(await eventually { handler.cancelled.load(ordering: .relaxed) == 1 })
    }

    @Test("a cancelled caller gets CANCELLED and the node's work is cancelled, with or without a deadline")
    func cancellation() async throws {
        let handler = TestHandler()
        let (_, link) = link(handler)
        for timeout in [nil, Duration.seconds(60)] {
            let before = handler.started.load(ordering: .relaxed)
            let call = Task { try await link.callSerialized("test/wait", payload: [], timeout: timeout) }
            #expect(await eventually { handler.started.load(ordering: .relaxed) == before + 1 })
            call.cancel()
            let failure = await Result { try await call.value }
            let code = (failure.failureValue as? RPCError)?.code
            // Without a deadline the call runs in the caller's task, which sees its own cancellation.
            #expect(code == .cancelled || failure.failureValue is CancellationError)
        }
        #expect(await eventually { handler.cancelled.load(ordering: .relaxed) == 2 })
    }

    @Test("a streaming call delivers its messages in order, then its reply")
    func streaming() async throws {
        let (_, link) = link(TestHandler())
        let received = Recorder<String>()
        let reply = try await link.callStreaming("test/stream", payload: Array("3".utf8)) {
            received.append(String(decoding: $0, as: UTF8.self))
        }
        #expect(received.values == ["1", "2", "3"])
        #expect(String(decoding: reply, as: UTF8.self) == "done")
    }

    @Test("a server shutting down lets running calls finish, then refuses new ones as UNAVAILABLE")
    func shutdown() async throws {
        let handler = TestHandler()
        let (server, link) = link(handler)
        _ = try await server.start()
        let running = Task { try await link.callSerialized("test/hold", payload: Array("h".utf8), timeout: nil) }
        #expect(await eventually { handler.latch("h").waiterCount == 1 })
        let stopped = Task { await server.shutdown(gracePeriod: .seconds(60)) }
        let refusals = Recorder<RPCError>()
        #expect(
            await eventually {
                let outcome = await Result { try await link.callSerialized("test/echo", payload: [], timeout: nil) }
                guard let error = outcome.failureValue as? RPCError else { return false }
                refusals.append(error)
                return true
            })
        #expect(refusals.values.first?.code == .unavailable && refusals.values.first?.retryable == true)
        handler.latch("h").open()
        #expect(try await running.value == Array("h".utf8))
        await stopped.value
    }
}

extension Result {
    fileprivate var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
