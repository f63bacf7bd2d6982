import DurableClient
import DurableEtcd
import DurableObjects
import Foundation
import TestSupport
import Testing

extension WholeMachineTests {
    /// A gateway and nodes started with `--etcd` (a real etcd member): the placement lives in etcd, each node holds
    /// its membership under a lease, and a node whose lease expired gets no new slots.
    @Suite("Membership and placement in etcd (real processes)")
    struct EtcdMembershipTests {
        @Test("a killed node's membership expires with its lease, and every new slot goes to the live node")
        func deadNodeGetsNoSlots() async throws {
            let etcdFolder = TemporaryDirectory("membership-etcd")
            let member = try await EtcdProcess.start(dataDirectory: etcdFolder.child("member"))
            let etcd = try EtcdClient(endpoints: [member.clientURL], requestTimeout: .seconds(30))
            let members = Array("/durable/default/members/".utf8)
            try await withTestCluster(
                nodes: 2, label: "membership", nodeArguments: ["--etcd", member.clientURL, "--lease-ttl", "4"],
                gatewayArguments: ["--etcd", member.clientURL]
            ) { cluster in
                let live = try await etcd.get(prefix: members).values.map { String(decoding: $0.key, as: UTF8.self) }
                #expect(
                    live == ["/durable/default/members/node1", "/durable/default/members/node2"],
                    "each node announced itself before it said it listens")
                #expect(try await etcd.get(prefix: Array("/durable/default/identities/".utf8)).values.count == 2)

                try await cluster.crashNode(2)
                #expect(
                    await eventually(timeout: .seconds(60), pollingEvery: .milliseconds(100)) {
                        (try? await etcd.get(prefix: members).values.count) == 1
                    }, "node2's membership went with its lease")

                let client = DurableClient(host: "127.0.0.1", port: try cluster.gateway.port, credentials: TestKeys.api)
                let counters = try await client.namespace("COUNTER")
                for index in 0..<40 {
                    // Every object is new, so every slot is assigned now: all on the live node, all answering.
                    #expect(try await counters.getByName("m\(index)").fetch("http://counter/increment").text() == "1")
                }
                let slots = try await etcd.get(prefix: Array("/durable/default/slots/".utf8)).values
                #expect(slots.count >= 30, "40 names spread over many slots")
                let owners = Set(
                    slots.map {
                        let record = try? JSONSerialization.jsonObject(with: Data($0.value)) as? [String: Any]
                        return record?["nodeID"] as? String ?? "unreadable"
                    })
                #expect(owners == ["node1"])
                await client.close()
            }
            await etcd.close()
            try await member.stop()
        }
    }
}
