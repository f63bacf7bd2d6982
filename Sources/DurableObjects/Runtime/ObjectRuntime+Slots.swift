import Crypto
import DurableStorage
import Foundation

/// One row of a node's database that belongs to a placement slot: what a slot move copies from one node to another.
public struct SlotRow: Sendable, Hashable {
    /// The column family: a namespace's (`ns:<namespace id>`), or `""` for the default one, which holds the objects'
    /// bookkeeping (alarms, names, WebSocket rows, automatic replies).
    public var family: String
    /// The key.
    public var key: [UInt8]
    /// The value.
    public var value: [UInt8]

    /// A row.
    public init(family: String, key: [UInt8], value: [UInt8]) {
        self.family = family
        self.key = key
        self.value = value
    }

    /// Feeds the row to `hasher`, each part length-prefixed so that no two different rows hash alike.
    func hash(into hasher: inout SHA256) {
        for part in [Array(family.utf8), key, value] {
            hasher.update(data: withUnsafeBytes(of: UInt64(part.count).bigEndian, Array.init))
            hasher.update(data: part)
        }
    }
}

/// What one pass over a slot's rows saw: the figures both ends of a slot move compare.
public struct SlotRowsSummary: Sendable, Equatable {
    /// Rows.
    public var rows = 0
    /// Bytes of keys and values.
    public var bytes = 0
    /// Objects with stored data.
    public var objects = 0
    /// SHA-256 over every row, in the order of the pass.
    public var checksum: [UInt8] = []

    /// An empty summary.
    public init() {}
}

/// Which keys of a node's database belong to a placement slot. An id's slot is its first two bytes, big-endian,
/// modulo 4096, so the ids of one slot begin with one of 16 two-byte prefixes.
public enum SlotKeyspace {
    /// The 16 two-byte prefixes of the ids in `slot`, in byte order.
    public static func idPrefixes(of slot: UInt16) -> [[UInt8]] {
        (0..<(65536 / PlacementEpochs.slotCount)).map { step in
            let value = Int(slot) % PlacementEpochs.slotCount + step * PlacementEpochs.slotCount
            return [UInt8(value >> 8), UInt8(value & 0xFF)]
        }
    }

    /// The same prefixes as lowercase hex, as the bookkeeping rows name ids.
    public static func hexPrefixes(of slot: UInt16) -> [String] {
        idPrefixes(of: slot).map { $0.map { String(format: "%02x", $0) }.joined() }
    }

    /// The kinds of bookkeeping row that name an object after its namespace (`<kind><namespace id>/<id hex>…`).
    static let bookkeepingKinds = [
        NodeKeyspace.alarm, NodeKeyspace.name, NodeKeyspace.socket, NodeKeyspace.autoResponse,
    ]
}

/// The rows of a placement slot: what a slot move copies from the slot's old owner to its new one.
extension ObjectRuntime {
    /// Walks every row of `slot` at one snapshot of the database, namespaces in id order, then the bookkeeping rows,
    /// and hands `body` batches of at most `batchSize` rows; returns what it saw, with a checksum of it.
    ///
    /// - Throws: a storage error, or what `body` throws (the walk stops).
    public func exportRows(
        ofSlot slot: UInt16, batchSize: Int = 512, _ body: ([SlotRow]) throws -> Void
    ) throws -> SlotRowsSummary {
        let snapshot = try database.snapshot()
        defer { snapshot.release() }
        var hasher = SHA256()
        var summary = SlotRowsSummary()
        var pending: [SlotRow] = []
        func add(_ row: SlotRow) throws {
            summary.rows += 1
            summary.bytes += row.key.count + row.value.count
            row.hash(into: &hasher)
            pending.append(row)
            if pending.count >= batchSize {
                try body(pending)
                pending.removeAll(keepingCapacity: true)
            }
        }
        let namespaces = namespaceIDs
        for namespaceID in namespaces {
            let familyName = Self.namespaceFamilyPrefix + namespaceID
            let family = try database.columnFamily(named: familyName)
            for prefix in SlotKeyspace.idPrefixes(of: slot) {
                var lastObject: ArraySlice<UInt8> = []
                try database.forEach(in: family, ScanOptions(prefix: prefix, snapshot: snapshot)) { key, value in
                    let object = key.prefix(ObjectKeySpace.objectIDLength)
                    if object != lastObject {
                        summary.objects += 1
                        lastObject = object
                    }
                    try add(SlotRow(family: familyName, key: key, value: value))
                    return true
                }
            }
        }
        let defaultFamily = try database.defaultColumnFamily
        for prefix in Self.bookkeepingPrefixes(ofSlot: slot, namespaces: namespaces) {
            try database.forEach(in: defaultFamily, ScanOptions(prefix: prefix, snapshot: snapshot)) { key, value in
                try add(SlotRow(family: "", key: key, value: value))
                return true
            }
        }
        if !pending.isEmpty { try body(pending) }
        summary.checksum = Array(hasher.finalize())
        return summary
    }

    /// Writes rows another node exported (one synced batch): the slot's data arriving on its new owner. The slot's
    /// alarms are scheduled by ``scheduleAlarms(ofSlot:)`` once every batch is in.
    ///
    /// - Throws: `FAILED_PRECONDITION` when a row's namespace is not defined here, `INVALID_ARGUMENT` for a row that
    ///   no slot owns (nothing is written then), or a storage error.
    public func importRows(_ rows: [SlotRow]) async throws {
        var batch = WriteBatch()
        var families: [String: ColumnFamily] = [:]
        let defaultFamily = try database.defaultColumnFamily
        for row in rows {
            let family: ColumnFamily
            if row.family.isEmpty {
                guard SlotKeyspace.bookkeepingKinds.contains(where: { row.key.starts(with: Array($0.utf8)) }) else {
                    throw DurableObjectError(
                        .invalidArgument,
                        "A slot row of the default column family must be an object's bookkeeping row, not "
                            + "'\(String(decoding: row.key.prefix(40), as: UTF8.self))'.")
                }
                family = defaultFamily
            } else if let known = families[row.family] {
                family = known
            } else {
                let namespaceID = String(row.family.dropFirst(Self.namespaceFamilyPrefix.count))
                guard row.family.hasPrefix(Self.namespaceFamilyPrefix), namespaceDefinition(namespaceID) != nil else {
                    throw DurableObjectError(
                        .failedPrecondition,
                        "Rows of '\(row.family)' cannot be written: its namespace is not defined on this node.")
                }
                family = try database.columnFamily(named: row.family)
                families[row.family] = family
            }
            if !row.family.isEmpty, row.key.count < ObjectKeySpace.objectIDLength {
                throw DurableObjectError(.invalidArgument, "A slot row of '\(row.family)' is shorter than an id.")
            }
            batch.put(row.value, forKey: row.key, in: family)
        }
        try await database.writeSynced(batch)
    }

    /// Schedules the stored alarms of the objects of `slot` (after its rows arrived from another node).
    public func scheduleAlarms(ofSlot slot: UInt16) throws {
        let defaultFamily = try database.defaultColumnFamily
        for namespaceID in namespaceIDs {
            let prefix = AlarmRecord.namespacePrefix(namespaceID)
            for hex in SlotKeyspace.hexPrefixes(of: slot) {
                for entry in try database.scan(in: defaultFamily, ScanOptions(prefix: prefix + Array(hex.utf8))) {
                    let idHex = String(decoding: entry.key.dropFirst(prefix.count), as: UTF8.self)
                    guard let id = NamespaceKey.parseHex(idHex), let time = AlarmRecord.decode(entry.value) else {
                        continue
                    }
                    alarms.load(AlarmScheduler.Key(namespaceID: namespaceID, id: id), at: time)
                }
            }
        }
    }

    /// Deletes every row of `slot` (it moved to another node) in one synced batch, and forgets its alarms.
    ///
    /// - Throws: `FAILED_PRECONDITION` while an object of the slot is active here (the slot must be retired
    ///   first), or a storage error.
    public func deleteRows(ofSlot slot: UInt16) async throws {
        if let active = activeObject(inSlot: slot) {
            throw DurableObjectError(
                .failedPrecondition,
                "Slot \(slot) still has an active object (\(active)); retire it before deleting the slot's rows.")
        }
        // Each row is deleted on its own, not by range: range tombstones stay in RocksDB until compaction and slow
        // every later read that crosses them (a rebalance deletes thousands of slot ranges, mostly empty ones).
        let namespaces = namespaceIDs
        var batch = WriteBatch()
        for namespaceID in namespaces {
            let family = try database.columnFamily(named: Self.namespaceFamilyPrefix + namespaceID)
            for prefix in SlotKeyspace.idPrefixes(of: slot) {
                try database.forEach(in: family, ScanOptions(prefix: prefix)) { key, _ in
                    batch.delete(key, in: family)
                    return true
                }
            }
        }
        let defaultFamily = try database.defaultColumnFamily
        for prefix in Self.bookkeepingPrefixes(ofSlot: slot, namespaces: namespaces) {
            let isAlarm = prefix.starts(with: Array(NodeKeyspace.alarm.utf8))
            try database.forEach(in: defaultFamily, ScanOptions(prefix: prefix)) { key, _ in
                if isAlarm { cancelAlarm(ofAlarmRowKey: key) }
                batch.delete(key, in: defaultFamily)
                return true
            }
        }
        guard !batch.isEmpty else { return }
        try await database.writeSynced(batch)
    }

    /// Closes the WebSockets of a retired slot's objects with code 1012 (the clients reconnect, and reach the new
    /// owner) and deletes their rows, so that the sockets do not move with the slot.
    func closeSockets(ofRetiredSlot slot: UInt16) async {
        do {
            let defaultFamily = try database.defaultColumnFamily
            var frames: [WebSocketFrame] = []
            var batch = WriteBatch()
            for namespaceID in namespaceIDs {
                for hex in SlotKeyspace.hexPrefixes(of: slot) {
                    let prefix = Array("\(NodeKeyspace.socket)\(namespaceID)/\(hex)".utf8)
                    try database.forEach(in: defaultFamily, ScanOptions(prefix: prefix)) { key, _ in
                        // `ws/<namespace id>/<64 hex digits>/<socket id>`.
                        let rest = key.dropFirst(prefix.count - hex.utf8.count)
                        guard rest.count > 65, rest[rest.startIndex + 64] == UInt8(ascii: "/") else { return true }
                        let socketID = String(decoding: rest.dropFirst(65), as: UTF8.self)
                        frames.append(
                            WebSocketFrame(
                                socketID: socketID, kind: .close(code: 1012, reason: Self.movedCloseReason)))
                        batch.delete(key, in: defaultFamily)
                        return true
                    }
                }
            }
            guard !frames.isEmpty else { return }
            try await database.writeSynced(batch)
            logger.info(
                "closed the WebSockets of a slot handed to another node",
                metadata: ["slot": "\(slot)", "sockets": "\(frames.count)"])
            try await webSocketHub?.deliver(frames)
        } catch {
            logger.warning("could not close the WebSockets of a retired slot: \(error)", metadata: ["slot": "\(slot)"])
        }
    }

    /// Closes with code 1012 the WebSockets recorded for `slots` and deletes their rows: a standby that took its
    /// primary's slots over holds the rows of sockets that were held for the old primary, whose objects are gone from
    /// memory; the clients reconnect and reach this node.
    public func closeSockets(ofSlotsTakenOver slots: [UInt16]) async {
        for slot in slots { await closeSockets(ofRetiredSlot: slot) }
    }

    /// The reason of the close (code 1012) a client sees when its object moved to another node.
    public static let movedCloseReason = "The Durable Object moved to another node; reconnect."

    /// The prefixes of the bookkeeping rows of `slot`'s objects, per kind, namespace and id prefix.
    private static func bookkeepingPrefixes(ofSlot slot: UInt16, namespaces: [String]) -> [[UInt8]] {
        SlotKeyspace.bookkeepingKinds.flatMap { kind in
            namespaces.flatMap { namespaceID in
                SlotKeyspace.hexPrefixes(of: slot).map { Array("\(kind)\(namespaceID)/\($0)".utf8) }
            }
        }
    }

    /// Cancels the scheduled alarm an alarm row (`alarm/<namespace>/<id hex>`) names.
    private func cancelAlarm(ofAlarmRowKey key: [UInt8]) {
        let text = String(decoding: key.dropFirst(NodeKeyspace.alarm.utf8.count), as: UTF8.self)
        guard let slash = text.lastIndex(of: "/"),
            let id = NamespaceKey.parseHex(String(text[text.index(after: slash)...]))
        else { return }
        alarms.cancel(AlarmScheduler.Key(namespaceID: String(text[..<slash]), id: id))
    }
}

/// Objects and bytes per slot.
extension ObjectRuntime {
    /// The slots this node holds data of, with their objects and the bytes of their keys and values (every
    /// namespace's column family is read once, at one snapshot; bookkeeping rows are not counted).
    public func slotUsage() throws -> [UInt16: (objects: Int, bytes: Int)] {
        let snapshot = try database.snapshot()
        defer { snapshot.release() }
        var usage: [UInt16: (objects: Int, bytes: Int)] = [:]
        for namespaceID in namespaceIDs {
            let family = try database.columnFamily(named: Self.namespaceFamilyPrefix + namespaceID)
            var lastObject: ArraySlice<UInt8> = []
            try database.forEach(in: family, ScanOptions(snapshot: snapshot)) { key, value in
                guard key.count >= ObjectKeySpace.objectIDLength else { return true }
                let slot = UInt16((Int(key[0]) << 8 | Int(key[1])) % PlacementEpochs.slotCount)
                let object = key.prefix(ObjectKeySpace.objectIDLength)
                var entry = usage[slot] ?? (0, 0)
                if object != lastObject {
                    entry.objects += 1
                    lastObject = object
                }
                entry.bytes += key.count + value.count
                usage[slot] = entry
                return true
            }
        }
        return usage
    }
}
