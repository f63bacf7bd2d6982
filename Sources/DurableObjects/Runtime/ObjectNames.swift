import DurableStorage
import Logging

/// The names objects were reached by, kept in the database's default column family under
/// `name/<namespace id>/<id hex>`, so that listings can show a name beside each id (ids made from names are MACs:
/// the name cannot be computed back).
///
/// A name is recorded once, with the first flush of an object reached by that name when no name is recorded yet
/// (one read at activation; the row rides in the flush's atomic batch), so an object that never writes leaves
/// nothing on disk. Dropping a namespace removes its names.
public enum ObjectNames {
    static let prefix = Array(NodeKeyspace.name.utf8)

    /// The key of the name of object `id` of namespace `namespaceID`.
    static func key(namespaceID: String, id: [UInt8]) -> [UInt8] {
        prefix + Array("\(namespaceID)/".utf8) + Array(DurableObjectId.hex(id).utf8)
    }

    /// The recorded name of object `id` of namespace `namespaceID`, if any.
    ///
    /// - Throws: a storage error when the database cannot be read.
    public static func name(namespaceID: String, id: [UInt8], database: Database) throws -> String? {
        try database.get(key(namespaceID: namespaceID, id: id), in: database.defaultColumnFamily).map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    /// The name `id` was derived from, to record with the object's first flush; nil when one is recorded already
    /// or the name does not derive the id under `namespace`'s key (a caller may send any name beside an id).
    /// Failures are logged, never thrown: a name is a convenience for operators.
    static func pendingName(
        _ id: DurableObjectId, namespace: NamespaceDefinition, database: Database, logger: Logger
    ) -> (namespaceID: String, name: String)? {
        guard let name = id.name else { return nil }
        do {
            let family = try database.defaultColumnFamily
            let key = key(namespaceID: namespace.id, id: id.bytes)
            guard try database.get(key, in: family) == nil, namespace.key.id(forName: name) == id else { return nil }
            return (namespace.id, name)
        } catch {
            logger.debug("cannot read an object's recorded name", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// Removes every name recorded for namespace `namespaceID` (and only those: a namespace whose id extends
    /// this one with `/` keeps its own).
    static func removeAll(namespaceID: String, database: Database) throws {
        let family = try database.defaultColumnFamily
        let namespacePrefix = prefix + Array("\(namespaceID)/".utf8)
        var batch = WriteBatch()
        try database.forEach(in: family, ScanOptions(prefix: namespacePrefix)) { key, _ in
            if key.count == namespacePrefix.count + 64, !key[namespacePrefix.count...].contains(UInt8(ascii: "/")) {
                batch.delete(key, in: family)
            }
            return true
        }
        if !batch.isEmpty { try database.write(batch, sync: true) }
    }
}

extension DurableObjectId {
    /// The lowercase hex digits of `bytes`.
    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        var text = ""
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return text
    }
}
