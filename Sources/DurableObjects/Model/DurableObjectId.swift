import Crypto
import Synchronization

/// The 32-byte identity of one durable object, printed as 64 lowercase hex digits.
///
/// Ids are made by a namespace: ``DurableObjectNamespace/idFromName(_:)`` derives one from a name,
/// ``DurableObjectNamespace/newUniqueId()`` makes a random one, and ``DurableObjectNamespace/idFromString(_:)``
/// parses and verifies the hex form. The second half of every id is a MAC of the first half under the namespace's
/// secret key, so an id validates itself and an id of one namespace is refused by another.
public struct DurableObjectId: Hashable, Sendable, CustomStringConvertible {
    /// The 32 bytes.
    public let bytes: [UInt8]
    /// The name the id was derived from, when it came from `idFromName` (an id parsed from a string has none).
    public let name: String?

    init(bytes: [UInt8], name: String?) {
        precondition(bytes.count == 32, "an object id is 32 bytes")
        self.bytes = bytes
        self.name = name
    }

    /// Two ids are equal when their bytes are; the name does not count.
    public static func == (lhs: DurableObjectId, rhs: DurableObjectId) -> Bool { lhs.bytes == rhs.bytes }

    /// Hashes the bytes.
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    /// The 64 lowercase hex digits.
    public var hexString: String { Self.hexString(of: bytes) }

    /// `bytes` as lowercase hex, two digits a byte, written straight into the string's storage.
    public static func hexString(of bytes: some Collection<UInt8>) -> String {
        String(unsafeUninitializedCapacity: bytes.count * 2) { text in
            var index = 0
            for byte in bytes {
                text[index] = hexDigits[Int(byte >> 4)]
                text[index + 1] = hexDigits[Int(byte & 0x0F)]
                index += 2
            }
            return index
        }
    }

    /// The hex form (`toString()` on the original platform).
    public var description: String { hexString }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// Whether this id and `other` are the same object (`equals` on the original platform).
    public func equals(_ other: DurableObjectId) -> Bool { self == other }
}

/// The secret of a namespace and the id scheme that uses it (<doc:WireProtocol> gives it byte for byte).
public struct NamespaceKey: Sendable, Hashable {
    /// 32 secret bytes.
    public let secret: [UInt8]
    /// HMAC-SHA256 with the key already absorbed; each MAC starts from a copy (the hash state is copy-on-write), so
    /// the key's padding blocks are hashed once, not per id.
    private let keyed: KeyedMAC
    /// Ids this key derived or verified lately, so that the calls of a busy object pay for no MAC at all.
    private let recent = RecentIDs()

    /// Wraps existing secret bytes.
    public init(secret: [UInt8]) {
        precondition(!secret.isEmpty, "a namespace secret cannot be empty")
        self.secret = secret
        keyed = KeyedMAC(hmac: HMAC<SHA256>(key: SymmetricKey(data: secret)))
    }

    /// Two keys are equal when their secrets are.
    public static func == (lhs: NamespaceKey, rhs: NamespaceKey) -> Bool { lhs.secret == rhs.secret }

    /// Hashes the secret.
    public func hash(into hasher: inout Hasher) { hasher.combine(secret) }

    /// A fresh random secret.
    public static func random() -> NamespaceKey {
        var generator = SystemRandomNumberGenerator()
        return NamespaceKey(secret: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    private func mac(_ data: [UInt8]) -> [UInt8] {
        var hmac = keyed.hmac
        hmac.update(data: data)
        return Array(hmac.finalize().prefix(16))
    }

    /// The id of `name`: `HMAC(key, name)[0..<16] ‖ HMAC(key, first16)[0..<16]`.
    public func id(forName name: String) -> DurableObjectId {
        if let bytes = recent.bytes(ofName: name) { return DurableObjectId(bytes: bytes, name: name) }
        let first = mac(Array(name.utf8))
        let bytes = first + mac(first)
        recent.remember(bytes, name: name)
        return DurableObjectId(bytes: bytes, name: name)
    }

    /// A new random id: 16 random bytes and their MAC.
    public func newUniqueID() -> DurableObjectId {
        var generator = SystemRandomNumberGenerator()
        let first = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return DurableObjectId(bytes: first + mac(first), name: nil)
    }

    /// Parses 64 hex digits and checks the MAC.
    ///
    /// - Throws: `Invalid Durable Object ID: must be 64 hex digits` when the text is not 64 hex digits;
    ///   `Durable Object ID is not valid for this namespace.` when the MAC does not verify.
    public func id(fromString text: String) throws(DurableObjectError) -> DurableObjectId {
        guard let bytes = Self.parseHex(text) else {
            throw .invalid("Invalid Durable Object ID: must be 64 hex digits")
        }
        try verify(bytes)
        return DurableObjectId(bytes: bytes, name: nil)
    }

    /// The id with these 32 bytes, checked against this namespace, with the name a caller says it was derived from.
    /// The name is kept only when it really derives these bytes (an object's `state.id.name` is never a name somebody
    /// merely claims); otherwise the id has no name.
    ///
    /// - Throws: `Durable Object ID is not valid for this namespace.` when the bytes are not an id of it.
    public func id(bytes: [UInt8], name: String?) throws(DurableObjectError) -> DurableObjectId {
        // Bytes derived from the name are an id of this namespace: their second half is the MAC of the first.
        if let name, id(forName: name).bytes == bytes { return DurableObjectId(bytes: bytes, name: name) }
        try verify(bytes)
        return DurableObjectId(bytes: bytes, name: nil)
    }

    /// Checks that `bytes` is an id of this namespace.
    public func verify(_ bytes: [UInt8]) throws(DurableObjectError) {
        guard bytes.count == 32 else { throw .invalid("Durable Object ID is not valid for this namespace.") }
        if recent.contains(bytes) { return }
        guard mac(Array(bytes[0..<16])) == Array(bytes[16..<32]) else {
            throw .invalid("Durable Object ID is not valid for this namespace.")
        }
        recent.remember(bytes, name: nil)
    }

    static func parseHex(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 64 else { return nil }
        var bytes = [UInt8]()
        bytes.reserveCapacity(32)
        var index = 0
        while index < 64 {
            guard let high = hexValue(utf8[index]), let low = hexValue(utf8[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    private static func hexValue(_ character: UInt8) -> UInt8? {
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): character - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// An HMAC state ready for data. The state is a value (its hash contexts copy on write), so sharing it between
/// threads and copying it per use is safe.
private struct KeyedMAC: @unchecked Sendable {
    let hmac: HMAC<SHA256>
}

/// A small cache of the ids a ``NamespaceKey`` derived or verified, so that a busy object's calls cost no MAC.
///
/// Two direct-mapped tables of 8,192 slots each: ids by their bytes (any id verified or derived), and ids by the
/// name they were derived from. A new entry replaces whatever had its slot. Only ids that were derived or verified
/// with the key get in, so a hit is as good as the MAC; the tables are made at the first entry, so a key that never
/// makes or checks an id costs nothing.
private final class RecentIDs: Sendable {
    private struct Entry {
        var bytes: [UInt8]
        var name: String?
    }

    private struct Tables {
        var byBytes: [Entry?] = []
        var byName: [Entry?] = []
    }

    private static let slots = 8192
    private let tables = Mutex(Tables())

    private static func slot(ofBytes bytes: [UInt8]) -> Int {
        // The first bytes are a MAC output: already uniformly spread.
        (Int(bytes[0]) | Int(bytes[1]) << 8) & (slots - 1)
    }

    private static func slot(ofName name: String) -> Int {
        name.hashValue & (slots - 1)
    }

    /// Whether `bytes` (32 of them) were verified or derived lately.
    func contains(_ bytes: [UInt8]) -> Bool {
        tables.withLock { tables in
            guard !tables.byBytes.isEmpty else { return false }
            return tables.byBytes[Self.slot(ofBytes: bytes)]?.bytes == bytes
        }
    }

    /// The id derived from `name` lately, if any.
    func bytes(ofName name: String) -> [UInt8]? {
        tables.withLock { tables in
            guard !tables.byName.isEmpty, let entry = tables.byName[Self.slot(ofName: name)], entry.name == name
            else { return nil }
            return entry.bytes
        }
    }

    /// Records an id verified (no name) or derived from `name`.
    func remember(_ bytes: [UInt8], name: String?) {
        tables.withLock { tables in
            if tables.byBytes.isEmpty {
                tables.byBytes = Array(repeating: nil, count: Self.slots)
                tables.byName = Array(repeating: nil, count: Self.slots)
            }
            tables.byBytes[Self.slot(ofBytes: bytes)] = Entry(bytes: bytes, name: name)
            if let name { tables.byName[Self.slot(ofName: name)] = Entry(bytes: bytes, name: name) }
        }
    }
}
