import DurableGateway
import DurableObjects
import DurableStorage
import Foundation
import TestSupport
import Testing

@Suite("The placement table")
struct PlacementTableTests {
    @Test("with no node registered, a slot has no owner and the call is told to retry")
    func noNodes() throws {
        let folder = TemporaryDirectory("placement-empty")
        let database = try Database(path: folder.child("db"))
        defer { database.close() }
        let table = try PlacementTable(database: database)
        let error = #expect(throws: DurableObjectError.self) { try table.owner(of: 7) }
        #expect(error?.code == .unavailable)
        #expect(error?.retryable == true)
        #expect(error?.message == "No storage node has joined the cluster yet.")
        #expect(table.assignment(of: 7) == nil)
    }

    @Test("new slots go to the node with the fewest, at epoch 1; an assigned slot keeps its owner")
    func leastLoaded() async throws {
        let folder = TemporaryDirectory("placement-spread")
        let database = try Database(path: folder.child("db"))
        defer { database.close() }
        let table = try PlacementTable(database: database)
        for node in ["node1", "node2", "node3"] { try table.register(nodeID: node, address: "127.0.0.1:1") }
        var owners: [String: Int] = [:]
        for slot in UInt16(0)..<30 {
            let (assignment, isNew) = try table.owner(of: slot)
            try await table.record(slot)
            #expect(isNew)
            #expect(assignment.epoch == 1)
            owners[assignment.nodeID, default: 0] += 1
        }
        #expect(owners == ["node1": 10, "node2": 10, "node3": 10])
        let again = try table.owner(of: 4)
        #expect(!again.isNew)
        #expect(again.assignment == table.assignment(of: 4))
        #expect(table.slots(of: "node1").count == 10)
        #expect(table.slots(of: "node1").map(\.slot) == table.slots(of: "node1").map(\.slot).sorted())

        // A node that joins later gets the new slots until it has caught up.
        try table.register(nodeID: "node4", address: "127.0.0.1:4")
        for slot in UInt16(30)..<40 { #expect(try table.owner(of: slot).assignment.nodeID == "node4") }
        #expect(try table.owner(of: 40).assignment.nodeID == "node1", "ties go to the first name")
    }

    @Test("a new owner is only reserved until it is recorded; a record that fails frees the slot to choose again")
    func reservations() async throws {
        let folder = TemporaryDirectory("placement-reserve")
        let database = try Database(path: folder.child("db"))
        let table = try PlacementTable(database: database)
        try table.register(nodeID: "node1", address: "127.0.0.1:1")
        let reserved = try table.owner(of: 9)
        #expect(reserved.isNew)
        // Not shown to anyone who would tell a node about it, and not chosen twice.
        #expect(table.assignment(of: 9) == nil)
        #expect(table.slots(of: "node1").isEmpty)
        #expect(try table.owner(of: 9) == (reserved.assignment, false))
        try await table.record(9)
        #expect(table.assignment(of: 9) == reserved.assignment)
        #expect(table.slots(of: "node1").map(\.slot) == [9])

        _ = try table.owner(of: 10)
        database.close()
        await #expect(throws: StorageError.self) { try await table.record(10) }
        #expect(table.assignment(of: 10) == nil)
        #expect(try table.owner(of: 10).isNew, "the failed reservation was dropped")
    }

    @Test("assignments and addresses survive reopening the database; a node's new address replaces the old")
    func persists() async throws {
        let folder = TemporaryDirectory("placement-persist")
        let path = folder.child("db")
        var before: [UInt16: PlacementTable.Assignment] = [:]
        do {
            let database = try Database(path: path)
            let table = try PlacementTable(database: database)
            try table.register(nodeID: "a", address: "127.0.0.1:1001")
            try table.register(nodeID: "b", address: "127.0.0.1:1002")
            for slot in [UInt16(1), 2, 3, 4_095] {
                before[slot] = try table.owner(of: slot).assignment
                try await table.record(slot)
            }
            try table.register(nodeID: "a", address: "127.0.0.1:2001")
            database.close()
        }
        let database = try Database(path: path)
        defer { database.close() }
        let table = try PlacementTable(database: database)
        #expect(table.nodes == ["a": "127.0.0.1:2001", "b": "127.0.0.1:1002"])
        for (slot, assignment) in before {
            #expect(table.assignment(of: slot) == assignment)
            #expect(try !table.owner(of: slot).isNew)
        }
        // The loads were counted again: a and b have two slots each, so the next goes to a.
        #expect(try table.owner(of: 100).assignment.nodeID == "a")
    }

    @Test("a table stored by an older version as one JSON value is read and rewritten as records")
    func legacyState() throws {
        let folder = TemporaryDirectory("placement-legacy")
        let path = folder.child("db")
        do {
            let database = try Database(path: path)
            let family = try database.ensureColumnFamily(named: "placement")
            var batch = WriteBatch()
            let legacy = #"{"slots":[7,{"nodeID":"old","epoch":3}],"nodes":{"old":"127.0.0.1:9"}}"#
            batch.put(Array(legacy.utf8), forKey: Array("placement/state".utf8), in: family)
            try database.write(batch, sync: true)
            database.close()
        }
        for _ in 0..<2 {
            let database = try Database(path: path)
            let table = try PlacementTable(database: database)
            #expect(table.assignment(of: 7)?.nodeID == "old")
            #expect(table.assignment(of: 7)?.epoch == 3)
            #expect(table.nodes == ["old": "127.0.0.1:9"])
            #expect(
                try database.get(Array("placement/state".utf8), in: database.columnFamily(named: "placement")) == nil)
            database.close()
        }
    }

    @Test("a node id keeps its database identity: another one is refused naming both, unless it replaces a lost node")
    func databaseIdentities() throws {
        let folder = TemporaryDirectory("placement-identity")
        let path = folder.child("db")
        do {
            let database = try Database(path: path)
            let table = try PlacementTable(database: database)
            #expect(try table.register(nodeID: "n1", address: "127.0.0.1:1", databaseIdentity: "aaaa") == .recorded)
            #expect(try table.register(nodeID: "n1", address: "127.0.0.1:2", databaseIdentity: "aaaa") == .matched)
            #expect(try table.register(nodeID: "n1", address: "127.0.0.1:3") == .unchecked)
            database.close()
        }
        let database = try Database(path: path)
        defer { database.close() }
        let table = try PlacementTable(database: database)
        #expect(table.databaseIdentity(of: "n1") == "aaaa", "kept across a restart of the gateway")
        let refused = #expect(throws: DurableObjectError.self) {
            try table.register(nodeID: "n1", address: "127.0.0.1:4", databaseIdentity: "bbbb")
        }
        #expect(refused?.code == .failedPrecondition)
        #expect(refused?.message.contains("came back with database bbbb") == true, "\(refused?.message ?? "")")
        #expect(refused?.message.contains("knows it with database aaaa") == true)
        #expect(table.nodes["n1"] == "127.0.0.1:3", "a refused node changes nothing")
        #expect(
            try table.register(nodeID: "n1", address: "127.0.0.1:5", databaseIdentity: "bbbb", replacingLostNode: true)
                == .replaced(lost: "aaaa"))
        #expect(table.databaseIdentity(of: "n1") == "bbbb")
        #expect(try table.register(nodeID: "n1", address: "127.0.0.1:5", databaseIdentity: "bbbb") == .matched)
    }
}
