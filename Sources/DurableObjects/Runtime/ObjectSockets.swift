import DurableStorage
import Foundation
import Logging
import Synchronization

/// The sockets of one object: kept in the node's database (so they outlive the instance: hibernation), with their
/// tags and attachments, and the object's outgoing frames, which leave in order once the writes before them are
/// durable (the output gate).
final class ObjectSockets: Sendable {
    /// `<namespace id>/<object id hex>`: how the gateway addresses the object's socket events.
    let address: String

    private struct Record: Codable {
        var tags: [String]
        var attachment: [UInt8]?
        var order: UInt64
    }

    private struct State {
        var records: [String: Record] = [:]
        var nextOrder: UInt64 = 0
        var autoResponse: (request: String, response: String)?
        var outbox: [(sequence: UInt64, frame: WebSocketFrame)] = []
        var draining = false
    }

    private let database: Database
    private let family: ColumnFamily
    private let prefix: [UInt8]
    private let autoResponseKey: [UInt8]
    private let engine: StorageEngine
    private let hub: @Sendable () -> (any WebSocketHub)?
    private let logger: Logger
    private let state = Mutex(State())

    /// Removes the socket rows and automatic responses of every object of namespace `namespaceID` (and only those:
    /// a namespace whose id extends this one with `/` keeps its own).
    static func removeAll(namespaceID: String, database: Database) throws {
        let family = try database.defaultColumnFamily
        var batch = WriteBatch()
        for (prefix, rowsAfterID) in [(NodeKeyspace.socket, true), (NodeKeyspace.autoResponse, false)] {
            let namespacePrefix = Array("\(prefix)\(namespaceID)/".utf8)
            try database.forEach(in: family, ScanOptions(prefix: namespacePrefix)) { key, _ in
                let rest = key[namespacePrefix.count...]
                // `<64 hex digits>` (an automatic response) or `<64 hex digits>/<socket id>` (a socket row).
                let idPart = rest.prefix(64)
                let isObjectRow =
                    idPart.count == 64 && !idPart.contains(UInt8(ascii: "/"))
                    && (rowsAfterID ? rest.dropFirst(64).first == UInt8(ascii: "/") : rest.count == 64)
                if isObjectRow { batch.delete(key, in: family) }
                return true
            }
        }
        if !batch.isEmpty { try database.write(batch, sync: true) }
    }

    /// Every socket row the node keeps: the object (namespace id, id hex) and the socket id.
    static func allRows(database: Database) throws -> [(namespaceID: String, idHex: String, socketID: String)] {
        let family = try database.defaultColumnFamily
        var rows: [(namespaceID: String, idHex: String, socketID: String)] = []
        try database.forEach(in: family, ScanOptions(prefix: Array(NodeKeyspace.socket.utf8))) { key, _ in
            // `ws/<namespace id>/<64 hex digits>/<socket id>`; socket ids hold no `/`, namespace ids may.
            let rest = String(decoding: key.dropFirst(NodeKeyspace.socket.utf8.count), as: UTF8.self)
            guard let lastSlash = rest.lastIndex(of: "/") else { return true }
            let socketID = String(rest[rest.index(after: lastSlash)...])
            let objectPart = rest[..<lastSlash]
            guard objectPart.count > 65,
                let slash = objectPart.index(objectPart.endIndex, offsetBy: -65, limitedBy: objectPart.startIndex),
                objectPart[slash] == "/"
            else { return true }
            rows.append((String(objectPart[..<slash]), String(objectPart[objectPart.index(after: slash)...]), socketID))
            return true
        }
        return rows
    }

    /// Loads the object's sockets from `database`'s default column family.
    init(
        namespaceID: String, id: DurableObjectId, database: Database, engine: StorageEngine,
        hub: @escaping @Sendable () -> (any WebSocketHub)?, logger: Logger
    ) {
        address = "\(namespaceID)/\(id.hexString)"
        self.database = database
        self.engine = engine
        self.hub = hub
        self.logger = logger
        prefix = Array("\(NodeKeyspace.socket)\(address)/".utf8)
        autoResponseKey = Array("\(NodeKeyspace.autoResponse)\(address)".utf8)
        // The default column family always exists.
        family = try! database.defaultColumnFamily
        var loaded = State()
        do {
            for entry in try database.scan(in: family, ScanOptions(prefix: prefix)) {
                let socketID = String(decoding: entry.key.dropFirst(prefix.count), as: UTF8.self)
                let record = try JSONDecoder().decode(Record.self, from: Data(entry.value))
                loaded.records[socketID] = record
                loaded.nextOrder = max(loaded.nextOrder, record.order + 1)
            }
            loaded.autoResponse = Self.storedAutoResponse(database: database, address: address)
        } catch {
            logger.error("could not load the object's WebSockets: \(error)")
        }
        state.withLock { $0 = loaded }
    }

    /// The automatic reply stored for the object at `address`, read without activating it.
    static func storedAutoResponse(database: Database, address: String) -> (request: String, response: String)? {
        guard let family = try? database.defaultColumnFamily,
            let bytes = try? database.get(Array("\(NodeKeyspace.autoResponse)\(address)".utf8), in: family),
            let pair = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String], pair.count == 2
        else { return nil }
        return (pair[0], pair[1])
    }

    // MARK: The table

    /// Registers a socket the gateway is opening for this object.
    func accept(socketID: String, tags: [String]) throws -> WebSocket {
        let record = try state.withLock { state throws -> Record in
            guard state.records.count < WebSocketLimits.maximumSocketsPerObject else {
                throw DurableObjectError(
                    .resourceExhausted,
                    "This Durable Object already holds \(WebSocketLimits.maximumSocketsPerObject) WebSockets, the most one object may accept."
                )
            }
            let record = Record(tags: tags, attachment: nil, order: state.nextOrder)
            state.nextOrder += 1
            state.records[socketID] = record
            return record
        }
        persist(socketID, record)
        return WebSocket(id: socketID, tags: tags, table: self)
    }

    /// The open sockets (those with `tag`, when given), in the order they were accepted.
    func sockets(tag: String?) -> [WebSocket] {
        state.withLock { state in
            state.records.filter { tag == nil || $0.value.tags.contains(tag!) }
                .sorted { $0.value.order < $1.value.order }
                .map { WebSocket(id: $0.key, tags: $0.value.tags, table: self) }
        }
    }

    /// The socket `socketID`, if it is open.
    func socket(_ socketID: String) -> WebSocket? {
        state.withLock { $0.records[socketID] }.map { WebSocket(id: socketID, tags: $0.tags, table: self) }
    }

    /// Forgets a socket (closed by either side).
    func remove(_ socketID: String) {
        guard state.withLock({ $0.records.removeValue(forKey: socketID) }) != nil else { return }
        var batch = WriteBatch()
        batch.delete(prefix + Array(socketID.utf8), in: family)
        write(batch)
    }

    func setAttachment(_ bytes: [UInt8], for socketID: String) {
        let record = state.withLock { state -> Record? in
            state.records[socketID]?.attachment = bytes
            return state.records[socketID]
        }
        if let record { persist(socketID, record) }
    }

    func attachment(for socketID: String) -> [UInt8]? {
        state.withLock { $0.records[socketID]?.attachment }
    }

    /// The automatic reply: a client message equal to `request` is answered with `response` without waking the
    /// object. `nil` removes it.
    func setAutoResponse(_ pair: (request: String, response: String)?) {
        state.withLock { $0.autoResponse = pair }
        var batch = WriteBatch()
        if let pair {
            batch.put(
                Array(try! JSONSerialization.data(withJSONObject: [pair.request, pair.response])),
                forKey: autoResponseKey,
                in: family)
        } else {
            batch.delete(autoResponseKey, in: family)
        }
        write(batch)
    }

    var autoResponse: (request: String, response: String)? { state.withLock { $0.autoResponse } }

    private func persist(_ socketID: String, _ record: Record) {
        var batch = WriteBatch()
        batch.put(Array(try! JSONEncoder().encode(record)), forKey: prefix + Array(socketID.utf8), in: family)
        write(batch)
    }

    private func write(_ batch: WriteBatch) {
        do {
            try database.write(batch, sync: false)
        } catch {
            logger.error("could not record the object's WebSockets: \(error)")
        }
    }

    // MARK: Sending

    /// Queues a frame; it leaves once every write the object made before it is durable.
    ///
    /// - Throws: when the socket is not open.
    func send(_ kind: WebSocketFrame.Kind, on socketID: String) throws {
        let sequence = engine.gateSequence
        let start = try state.withLock { state throws -> Bool in
            guard state.records[socketID] != nil else {
                throw DurableObjectError(.failedPrecondition, "WebSocket \(socketID) is not open.")
            }
            state.outbox.append((sequence, WebSocketFrame(socketID: socketID, kind: kind)))
            if state.draining { return false }
            state.draining = true
            return true
        }
        if start { Task { await drain() } }
    }

    /// Sends a frame without the output gate (automatic replies, and closes the runtime itself decides on).
    func sendNow(_ frames: [WebSocketFrame]) async {
        guard let hub = hub() else { return }
        do {
            try await hub.deliver(frames)
        } catch {
            logger.warning("could not deliver WebSocket frames: \(error)")
        }
    }

    /// Whether frames are waiting to leave.
    var hasPendingFrames: Bool { state.withLock { !$0.outbox.isEmpty || $0.draining } }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [(sequence: UInt64, frame: WebSocketFrame)] in
                defer { state.outbox.removeAll() }
                if state.outbox.isEmpty { state.draining = false }
                return state.outbox
            }
            guard let last = batch.last else { return }
            do {
                try await engine.waitUntilDurable(last.sequence)
            } catch {
                // The writes the frames depended on failed: they must not be seen.
                logger.warning("dropping \(batch.count) WebSocket frames: the writes before them failed: \(error)")
                continue
            }
            await sendNow(batch.map(\.frame))
        }
    }
}
