import DurableEtcd
import Foundation
import TestSupport
import Testing

/// The etcd client against a real etcd member started by the test: keys, prefixes, transactions (the
/// create-if-absent step placement relies on), leases that expire and take their keys, watches, and endpoint
/// failover.
@Suite("etcd client (a real etcd member)")
struct EtcdClientTests {
    /// Runs `body` with a fresh member and a client of it, stopping both afterwards.
    private func withEtcd(_ body: (EtcdClient, EtcdProcess) async throws -> Void) async throws {
        let folder = TemporaryDirectory("etcd")
        let member = try await EtcdProcess.start(dataDirectory: folder.child("member"))
        let client = try EtcdClient(endpoints: [member.clientURL], requestTimeout: .seconds(30))
        do {
            try await body(client, member)
        } catch {
            await client.close()
            try await member.stop()
            throw error
        }
        await client.close()
        try await member.stop()
    }

    private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test("put, get and delete keys and prefixes, with revisions that grow")
    func keys() async throws {
        try await withEtcd { client, _ in
            #expect(try await client.get(bytes("a/1")) == nil)
            let first = try await client.put(bytes("a/1"), bytes("one"))
            let second = try await client.put(bytes("a/2"), bytes("two"))
            #expect(second > first)
            try await client.put(bytes("b/1"), [0, 0xFF, 7])
            let one = try #require(try await client.get(bytes("a/1")))
            #expect(one.value == bytes("one") && one.createRevision == first && one.version == 1)
            #expect(try await client.get(bytes("b/1"))?.value == [0, 0xFF, 7], "values are bytes")
            let listed = try await client.get(prefix: bytes("a/"))
            #expect(listed.values.map(\.key) == [bytes("a/1"), bytes("a/2")])
            #expect(listed.revision >= second)
            #expect(try await client.delete(prefix: bytes("a/")) == 2)
            #expect(try await client.get(prefix: bytes("a/")).values.isEmpty)
            #expect(try await client.delete(bytes("b/1")) == 1)
            #expect(try await client.delete(bytes("b/1")) == 0)
        }
    }

    @Test("create-if-absent: of two transactions for one new key, exactly one succeeds; the other reads the winner")
    func createIfAbsent() async throws {
        try await withEtcd { client, _ in
            let key = bytes("slots/0007")
            let results = try await withThrowingTaskGroup(of: (String, TransactionResult).self) { group in
                for node in ["node-1", "node-2", "node-3", "node-4"] {
                    group.addTask {
                        let result = try await client.transaction(
                            Transaction(
                                comparisons: [.absent(key)],
                                success: [.put(key: key, value: Array(node.utf8), lease: nil)],
                                failure: [.get(key: key)]))
                        return (node, result)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let winners = results.filter(\.1.succeeded)
            #expect(winners.count == 1)
            let winner = try #require(winners.first).0
            #expect(try await client.get(key)?.value == Array(winner.utf8))
            for (_, result) in results where !result.succeeded {
                guard case .values(let read) = result.responses.first else {
                    Issue.record("a failed transaction answers its read")
                    continue
                }
                #expect(read.first?.value == Array(winner.utf8))
            }
            // A comparison on the value and the modification revision.
            let current = try #require(try await client.get(key))
            let stale = try await client.transaction(
                Transaction(
                    comparisons: [Transaction.Comparison(key: key, .modRevision(current.modRevision - 1))],
                    success: [.delete(key: key)]))
            #expect(!stale.succeeded)
            let fresh = try await client.transaction(
                Transaction(
                    comparisons: [Transaction.Comparison(key: key, .value(Array(winner.utf8)))],
                    success: [.delete(key: key)]))
            #expect(fresh.succeeded && fresh.responses == [.deleted(1)])
        }
    }

    @Test("a key under a lease lives while the lease is kept alive and goes when it expires or is revoked")
    func leases() async throws {
        try await withEtcd { client, _ in
            // The kept lease has room for a loaded machine; the lapsing one has etcd's shortest TTL.
            let (kept, ttl) = try await client.grantLease(ttl: 30)
            #expect(ttl == 30)
            try await client.put(bytes("members/kept"), bytes("x"), lease: kept)
            let (lapsing, _) = try await client.grantLease(ttl: 1)
            try await client.put(bytes("members/lapsing"), bytes("y"), lease: lapsing)
            #expect(try await client.get(bytes("members/lapsing"))?.lease == lapsing)
            // Keep one alive until the other's key is gone (etcd expires a lease after its TTL).
            let expired = try await eventually(timeout: .seconds(30), pollingEvery: .milliseconds(200)) {
                #expect(try await client.keepAlive(lease: kept) > 0)
                return try await client.get(bytes("members/lapsing")) == nil
            }
            #expect(expired)
            #expect(try await client.get(bytes("members/kept"))?.value == bytes("x"))
            #expect(try await client.keepAlive(lease: lapsing) <= 0, "an expired lease cannot be renewed")
            try await client.revoke(lease: kept)
            #expect(try await client.get(bytes("members/kept")) == nil)
        }
    }

    @Test("a watch delivers every change under its prefix from the given revision, in order")
    func watch() async throws {
        try await withEtcd { client, _ in
            let start = try await client.put(bytes("registry/a"), bytes("1"))
            try await client.put(bytes("other/x"), bytes("not watched"))
            let events = client.watch(prefix: bytes("registry/"), fromRevision: start)
            try await client.put(bytes("registry/b"), bytes("2"))
            try await client.delete(bytes("registry/a"))
            var seen: [(WatchEvent.Kind, String, String)] = []
            for try await batch in events {
                for event in batch {
                    seen.append(
                        (
                            event.kind, String(decoding: event.keyValue.key, as: UTF8.self),
                            String(decoding: event.keyValue.value, as: UTF8.self)
                        ))
                }
                if seen.count >= 3 { break }
            }
            #expect(seen.map(\.0) == [.put, .put, .delete])
            #expect(seen.map(\.1) == ["registry/a", "registry/b", "registry/a"])
            #expect(seen.map(\.2) == ["1", "2", ""])
        }
    }

    @Test("an unreachable endpoint is skipped for the next; with none reachable the error names them")
    func endpoints() async throws {
        try await withEtcd { _, member in
            let dead = "http://127.0.0.1:\(try freeLoopbackPort())"
            let client = try EtcdClient(endpoints: ["\(dead),\(member.clientURL)"])
            try await client.put(bytes("k"), bytes("v"))
            #expect(try await client.get(bytes("k"))?.value == bytes("v"))
            await client.close()
            let nowhere = try EtcdClient(endpoints: [dead])
            let error = await #expect(throws: EtcdError.self) { try await nowhere.get(bytes("k")) }
            #expect(error?.unreachable == true)
            #expect(error?.message.contains(dead) == true)
            await nowhere.close()
        }
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: ["127.0.0.1:2379"]) }
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: [""]) }
    }
}
