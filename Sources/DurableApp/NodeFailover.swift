import ArgumentParser
import DurableClient
import DurableEtcd
import DurableGateway
import DurableNode
import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Logging

/// The control plane of a replicated node in etcd: each record is written in a transaction that requires the
/// node's term to be unchanged, so a primary that was replaced learns it there.
struct EtcdReplicationControl: ReplicationControl {
    let client: EtcdClient
    let keys: ReplicationKeys
    let nodeID: String

    func recordAlone(term: UInt64, standby: String) async throws {
        try await write(ReplicationRecord(term: term, standby: standby, standbyDatabase: "", inStep: false))
    }

    func recordInStep(term: UInt64, standby: String, standbyDatabase: String) async throws {
        try await write(ReplicationRecord(term: term, standby: standby, standbyDatabase: standbyDatabase, inStep: true))
    }

    private func write(_ record: ReplicationRecord) async throws {
        let termKey = keys.term(nodeID)
        var comparisons = [Transaction.Comparison(key: termKey, .value(NodeTerm.primary(record.term).bytes))]
        if record.inStep {
            // Only a primary that holds its membership: the standby takes over once that key is gone, so it must
            // not be recorded in step before the primary's lease exists.
            comparisons.append(Transaction.Comparison(key: keys.member(nodeID), .version(0), .greater))
        }
        let result = try await client.transaction(
            Transaction(
                comparisons: comparisons,
                success: [.put(key: keys.record(nodeID), value: Array(try JSONEncoder().encode(record)), lease: nil)],
                failure: [.get(key: termKey)]))
        guard result.succeeded else {
            if record.inStep, (try? await client.get(keys.member(nodeID))) == nil {
                throw NotAMemberYet()
            }
            var now = "none"
            if case .values(let values) = result.responses.first, let value = values.first {
                now = String(decoding: value.value, as: UTF8.self)
            }
            throw ReplicationFenced("node \(nodeID) is no longer primary at term \(record.term) (etcd says \(now))")
        }
    }
}

/// The primary's membership key is not there yet: the standby cannot be recorded in step (tried again later).
struct NotAMemberYet: Error, CustomStringConvertible {
    var description: String { "this node holds no membership key in etcd yet" }
}

/// The standby's side of failover: it keeps itself attached to its primary, and when the primary's lease is gone
/// and the primary recorded it in step, it takes the primary's term over in one etcd transaction.
struct StandbyFailover {
    let client: EtcdClient?
    let keys: ReplicationKeys
    let nodeID: String
    let primary: String
    /// The primary's address when there is no etcd to look it up in.
    let primaryAddress: String?
    let advertise: String
    let credentials: RPCKey?
    /// How the standby reaches its primary over TLS; `nil` for plaintext.
    let tls: RPCClientTLS?
    let node: StorageNode
    let logger: Logger

    /// Tells the primary where this standby is, again every few seconds (a primary that restarted, or moved, hears
    /// of it). Runs until cancelled.
    func keepAttached() async {
        var attachedTo: String?
        var lastAttach = ContinuousClock.now - .seconds(60)
        while !Task.isCancelled {
            if let address = await primaryAddressNow(),
                address != attachedTo || ContinuousClock.now - lastAttach > .seconds(5)
            {
                do {
                    try await attach(at: address)
                    if attachedTo != address {
                        logger.notice(
                            "attached to the primary", metadata: ["primary": "\(primary)", "address": "\(address)"])
                    }
                    attachedTo = address
                    lastAttach = .now
                } catch {
                    logger.debug("could not attach to the primary", metadata: ["error": "\(error)"])
                }
            }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }

    private func primaryAddressNow() async -> String? {
        if let primaryAddress { return primaryAddress }
        guard let client, let value = try? await client.get(keys.member(primary))?.value,
            let record = try? JSONDecoder().decode(EtcdPlacementStore.MemberRecord.self, from: Data(value))
        else { return nil }
        return record.address
    }

    private func attach(at address: String) async throws {
        let endpoint = try DurableClient.Endpoint.list(address)[0]
        let connection = try await RPCConnection.connect(
            host: endpoint.host, port: endpoint.port, connectTimeout: .seconds(1), credentials: credentials, tls: tls,
            logger: logger)
        defer { Task { await connection.close() } }
        _ = try await connection.call(
            Methods.nodeAttachStandby,
            payload: try Durable_V1_AttachStandbyRequest.with {
                $0.standbyNodeID = nodeID
                $0.address = advertise
            }.serializedBytes(), timeout: .seconds(2))
    }

    /// Waits until this standby may take over and does: returns the new term once etcd names this node primary.
    func waitToTakeOver() async -> UInt64? {
        guard let client else { return nil }
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(200))
            do {
                if let term = try await tryTakeOver(client) { return term }
            } catch {
                logger.debug("failover check failed", metadata: ["error": "\(error)"])
            }
        }
        return nil
    }

    private func tryTakeOver(_ client: EtcdClient) async throws -> UInt64? {
        // Only once the primary's lease is gone.
        guard try await client.get(keys.member(primary)) == nil else { return nil }
        guard let termValue = try await client.get(keys.term(primary)),
            case .primary(let term)? = NodeTerm(termValue.value)
        else { return nil }
        guard let recordValue = try await client.get(keys.record(primary)),
            let record = try? JSONDecoder().decode(ReplicationRecord.self, from: Data(recordValue.value))
        else { return nil }
        guard let position = node.standbyPosition else { return nil }
        guard record.term == term, record.inStep, record.standby == nodeID,
            record.standbyDatabase == node.databaseIdentity, position.primaryNodeID == primary, !position.catchingUp
        else {
            logger.warning(
                "the primary's lease is gone, but this standby may not take over: it is not recorded in step",
                metadata: [
                    "primary": "\(primary)", "record": "\(record)", "catching-up": "\(position.catchingUp)",
                ])
            try? await Task.sleep(for: .seconds(1))
            return nil
        }
        let next = term + 1
        let newRecord = ReplicationRecord(term: next, standby: primary, standbyDatabase: "", inStep: false)
        let result = try await client.transaction(
            Transaction(
                comparisons: [
                    Transaction.Comparison(key: keys.term(primary), .value(termValue.value)),
                    Transaction.Comparison(key: keys.record(primary), .modRevision(recordValue.modRevision)),
                    .absent(keys.member(primary)),
                ],
                success: [
                    .put(key: keys.term(primary), value: NodeTerm.standby(of: nodeID, next).bytes, lease: nil),
                    .put(key: keys.term(nodeID), value: NodeTerm.primary(next).bytes, lease: nil),
                    .put(key: keys.record(nodeID), value: Array(try JSONEncoder().encode(newRecord)), lease: nil),
                    // The database that now holds the slots' data is this node's own: the gateways check it when
                    // the node registers.
                    .put(key: keys.identity(nodeID), value: Array(node.databaseIdentity.utf8), lease: nil),
                ]))
        guard result.succeeded else { return nil }
        logger.notice(
            "took over from the primary in etcd", metadata: ["primary": "\(primary)", "term": "\(next)"])
        return next
    }

    /// Gives this node every slot its former primary owns, at the next epoch, one transaction per slot (each
    /// requires the record it replaces); returns the slots and epochs taken.
    static func takeSlots(
        of primary: String, to nodeID: String, placement: EtcdPlacementStore, logger: Logger
    ) async -> [(slot: UInt16, epoch: UInt64)] {
        var taken: [(slot: UInt16, epoch: UInt64)] = []
        for _ in 0..<20 {
            let remaining = placement.slots(of: primary)
            if remaining.isEmpty { break }
            for (slot, _) in remaining {
                guard let current = placement.assignment(of: slot), current.nodeID == primary else { continue }
                let next = SlotAssignment(nodeID: nodeID, epoch: current.epoch + 1)
                if (try? await placement.replace(slot, expected: current, with: next)) == true {
                    taken.append((slot, next.epoch))
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        // Slots this node owned before (taken over in an earlier run of this process that did not finish).
        for (slot, epoch) in placement.slots(of: nodeID) where !taken.contains(where: { $0.slot == slot }) {
            taken.append((slot, epoch))
        }
        logger.notice(
            "took the former primary's slots", metadata: ["primary": "\(primary)", "slots": "\(taken.count)"])
        return taken
    }
}

extension ReplicationPolicy: ExpressibleByArgument {}
