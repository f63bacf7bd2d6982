import DurableClient
import DurableObjects
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// The hosts that fault tests between machines run on (``NetworkLab``): a gateway and a node on hosts of their
    /// own, and the node's host cut off from the network and brought back.
    @Suite("Hosts of their own: network namespaces (real processes)")
    struct NetworkLabTests {
        @Test(
            "a node on a host cut off from the network: its objects fail, without answer, until the host is back; no acknowledged write is lost",
            .enabled(if: NetworkLab.isAvailable, "needs root and iproute2 (ip)"))
        func nodeCutOff() async throws {
            let lab = try await NetworkLab.make(hosts: 2)
            let folder = TemporaryDirectory("network-lab")
            var processes: [ServerProcess] = []
            do {
                let (gatewayHost, nodeHost) = (lab.hosts[0], lab.hosts[1])
                let gateway = try await lab.launch(
                    on: gatewayHost,
                    [
                        "gateway", "--host", gatewayHost.address, "--rpc-port", "0", "--port", "0", "--data",
                        folder.child("gateway"), "--log-level", "warning",
                    ], dataDirectory: folder.child("gateway"))
                processes.append(gateway)
                let node = try await lab.launch(
                    on: nodeHost,
                    [
                        "node", "--host", nodeHost.address, "--port", "0", "--data", folder.child("node"),
                        "--node-id", "node1", "--gateway", "\(gatewayHost.address):\(gateway.port)", "--log-level",
                        "warning",
                    ], dataDirectory: folder.child("node"))
                processes.append(node)

                let client = DurableClient(
                    host: gatewayHost.address, port: gateway.port, defaultTimeout: .seconds(2),
                    credentials: TestKeys.api)
                let counter = try await client.namespace("COUNTER").getByName("lab")
                for expected in 1...3 {
                    #expect(try await counter.fetch("http://c/increment").text() == "\(expected)")
                }

                try await lab.cutOff(nodeHost)
                // Nothing answers from the node's host: the call runs into its deadline.
                let started = ContinuousClock.now
                let lost = await #expect(throws: DurableObjectError.self) {
                    try await counter.fetch("http://c/increment")
                }
                #expect(lost?.retryable == true || lost?.code == .deadlineExceeded, "\(String(describing: lost))")
                #expect(ContinuousClock.now - started >= .seconds(1), "no answer came back, not even a refusal")

                try await lab.reconnect(nodeHost)
                // The increment that timed out may or may not have landed; every acknowledged one has.
                #expect(
                    await eventually(timeout: .seconds(60)) {
                        (try? await counter.fetch("http://c/").text()).flatMap(Int.init).map { $0 >= 3 } ?? false
                    })
                let count = Int(try await counter.fetch("http://c/").text()) ?? -1
                #expect(count == 3 || count == 4, "\(count)")
                await client.close()
            } catch {
                for process in processes.reversed() { _ = await process.stop() }
                await lab.remove()
                throw error
            }
            for process in processes.reversed() { #expect(await process.stop() == 0) }
            await lab.remove()
        }
    }
}
