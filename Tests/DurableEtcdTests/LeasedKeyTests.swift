import DurableEtcd
import Foundation
import Logging
import TestSupport
import Testing

/// A key held under a lease (a real etcd member): present while its holder runs, back after its lease is lost,
/// gone at once when the holder stops.
@Suite("Leased keys (a real etcd member)")
struct LeasedKeyTests {
    @Test("held while running, renewed, taken again under a new lease when the old one is lost, gone when stopped")
    func lifecycle() async throws {
        let folder = TemporaryDirectory("etcd-leased")
        let member = try await EtcdProcess.start(dataDirectory: folder.child("member"))
        let client = try EtcdClient(endpoints: [member.clientURL], requestTimeout: .seconds(30))
        let key = Array("/durable/test/members/node-1".utf8)
        let held = LeasedKey(
            client: client, key: key, value: Array("127.0.0.1:1".utf8), ttl: 2, logger: Logger(label: "test"))
        let holder = Task { await held.run() }

        #expect(await eventually { (try? await client.get(key))?.value == Array("127.0.0.1:1".utf8) })
        // Renewed several times over more than one TTL, and still held. (On a machine loaded enough to stall etcd
        // past the TTL the lease may have been replaced meanwhile: the key is then held under the new one.)
        #expect(await eventually { held.renewals >= 4 })
        let first = try #require(held.currentLease)
        #expect(try await client.get(key)?.lease == first)

        try await held.update(Array("127.0.0.1:2".utf8))
        #expect(try await client.get(key)?.value == Array("127.0.0.1:2".utf8))

        // Losing the lease (as if it expired) takes the key away; the holder takes it again under a new lease.
        try? await client.revoke(lease: first)
        #expect(
            await eventually {
                guard let now = try? await client.get(key) else { return false }
                return now.lease != first && now.lease == held.currentLease
                    && now.value == Array("127.0.0.1:2".utf8)
            })

        holder.cancel()
        await holder.value
        #expect(try await client.get(key) == nil, "stopping revokes the lease")
        await client.close()
        try await member.stop()
    }
}
