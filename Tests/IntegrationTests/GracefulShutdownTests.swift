import DurableClient
import DurableObjects
import DurableWire
import Foundation
import Synchronization
import TestSupport
import Testing

extension ProcessTests {
    /// SIGTERM on real processes: calls in flight finish, new ones are refused retryably, the process exits 0 after
    /// closing its database, and every acknowledged write is there after a restart.
    @Suite("Graceful shutdown on SIGTERM (real processes)")
    struct GracefulShutdownTests {
        /// Increments `name` back to back until a call fails; returns the last value acknowledged and the error.
        static func incrementUntilRefused(_ counters: DurableObjectNamespace, _ name: String, path: String) async -> (
            Int, DurableObjectError?
        ) {
            var last = 0
            while true {
                do {
                    let response = try await counters.getByName(name).fetch(path, method: .post)
                    guard let value = Int(response.text()) else { return (last, nil) }
                    last = value
                } catch let error as DurableObjectError {
                    return (last, error)
                } catch {
                    return (last, nil)
                }
            }
        }

        @Test(
            "a node finishes the call in flight, refuses new ones retryably, exits 0, and loses no acknowledged write")
        func node() async throws {
            let folder = TemporaryDirectory("graceful-node")
            let node = try await ServerProcess.launch(
                ["node", "--port", "0", "--data", folder.child("data")], dataDirectory: folder.child("data"),
                executable: BuiltExecutable.testServer)
            let client = DurableClient(
                host: "127.0.0.1", port: node.port, connections: 2, credentials: TestKeys.cluster)
            let diagnostic = try await client.namespace("DIAGNOSTIC")
            for index in 0..<20 {
                #expect(try await diagnostic.getByName("g\(index)").fetch("http://d/record").text() == "1")
            }
            let slow = Task { try await diagnostic.getByName("slow").fetch("http://d/sleep?ms=1500").text() }
            let busy = Task { await Self.incrementUntilRefused(diagnostic, "busy", path: "http://d/record") }
            // The slow call has reached its object once the node counts it active (20 + slow + busy).
            #expect(await eventually { (try? await client.stats().activeObjects) ?? 0 >= 22 })
            node.child.send(SIGTERM)
            #expect(try await slow.value == "slept 1500", "the call in flight finished")
            let (acknowledged, error) = await busy.value
            #expect(acknowledged > 0)
            #expect(error?.retryable == true, "new calls are refused retryably: \(String(describing: error))")
            #expect(await node.stop() == 0)
            #expect(node.child.errorText.contains("storage node stopped"), "\(node.child.errorText)")
            await client.close()

            let restarted = try await ServerProcess.node(
                dataDirectory: folder.child("data"), executable: BuiltExecutable.testServer)
            let again = DurableClient(host: "127.0.0.1", port: restarted.port, credentials: TestKeys.cluster)
            let namespace = try await again.namespace("DIAGNOSTIC")
            let runs = Int(try await namespace.getByName("busy").fetch("http://d/runs").text()) ?? -1
            #expect(runs >= acknowledged && runs <= acknowledged + 1, "acknowledged \(acknowledged), stored \(runs)")
            for index in 0..<20 {
                #expect(try await namespace.getByName("g\(index)").fetch("http://d/runs").text() == "1")
            }
            await again.close()
            #expect(await restarted.stop() == 0)
        }

        @Test("a gateway stops serving retryably under load, exits 0, and its node kept every acknowledged write")
        func gateway() async throws {
            let folder = TemporaryDirectory("graceful-gateway")
            let gateway = try await ServerProcess.launch(
                ["gateway", "--rpc-port", "0", "--port", "0", "--data", folder.child("gateway")],
                dataDirectory: folder.child("gateway"))
            let node = try await ServerProcess.node(
                dataDirectory: folder.child("node"), arguments: ["--gateway", "127.0.0.1:\(gateway.port)"])
            let client = DurableClient(host: "127.0.0.1", port: gateway.port, credentials: TestKeys.api)
            let counters = try await client.namespace("COUNTER")
            #expect(try await counters.getByName("steady").fetch("http://c/increment").text() == "1")
            let busy = Task { await Self.incrementUntilRefused(counters, "busy", path: "http://c/increment") }
            #expect(
                await eventually { (try? await counters.getByName("busy").fetch("http://c/").text()) ?? "0" != "0" })
            #expect(await gateway.stop() == 0)
            let (acknowledged, error) = await busy.value
            #expect(acknowledged > 0)
            #expect(error?.retryable == true, "\(String(describing: error))")
            #expect(gateway.child.errorText.contains("gateway stopped"), "\(gateway.child.errorText)")
            await client.close()

            let restarted = try await ServerProcess.gateway(
                dataDirectory: folder.child("gateway"), arguments: ["--rpc-port", "\(gateway.port)"])
            let again = DurableClient(host: "127.0.0.1", port: restarted.port, credentials: TestKeys.api)
            let namespace = try await again.namespace("COUNTER")
            let stored = Int(try await namespace.getByName("busy").fetch("http://c/").text()) ?? -1
            #expect(
                stored >= acknowledged && stored <= acknowledged + 1, "acknowledged \(acknowledged), stored \(stored)")
            #expect(try await namespace.getByName("steady").fetch("http://c/").text() == "1")
            await again.close()
            #expect(await node.stop() == 0)
            #expect(await restarted.stop() == 0)
        }
    }
}
