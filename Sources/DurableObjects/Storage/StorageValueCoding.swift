import Foundation

/// How values are laid out in storage: one tag byte, then the payload.
///
/// Integers, doubles, booleans, strings and byte arrays have compact encodings (a zig-zag varint for integers,
/// eight bytes for a double, the raw UTF-8 or bytes otherwise); any other `Codable` value is stored as JSON.
/// The size limits of the storage API apply to these encoded bytes.
enum StorageTag: UInt8 {
    case integer = 1
    case double = 2
    case boolean = 3
    case string = 4
    case bytes = 5
    case json = 6
}

/// A value with a compact storage encoding.
protocol CompactStorable {
    static var storageTag: StorageTag { get }
    func storagePayload() -> [UInt8]
    init?(storagePayload: ArraySlice<UInt8>)
}

extension Int64: CompactStorable {
    static var storageTag: StorageTag { .integer }
    func storagePayload() -> [UInt8] {
        var zigzag = UInt64(bitPattern: (self << 1) ^ (self >> 63))
        var bytes: [UInt8] = []
        while zigzag >= 0x80 {
            bytes.append(UInt8(zigzag & 0x7F) | 0x80)
            zigzag >>= 7
        }
        bytes.append(UInt8(zigzag))
        return bytes
    }
    init?(storagePayload payload: ArraySlice<UInt8>) {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for byte in payload {
            guard shift < 64 else { return nil }
            value |= UInt64(byte & 0x7F) << shift
            shift += 7
            if byte < 0x80 { break }
        }
        self = Int64(bitPattern: value >> 1) ^ -Int64(bitPattern: value & 1)
    }
}

extension Int: CompactStorable {
    static var storageTag: StorageTag { .integer }
    func storagePayload() -> [UInt8] { Int64(self).storagePayload() }
    init?(storagePayload payload: ArraySlice<UInt8>) {
        guard let value = Int64(storagePayload: payload), let exact = Int(exactly: value) else { return nil }
        self = exact
    }
}

extension Int32: CompactStorable {
    static var storageTag: StorageTag { .integer }
    func storagePayload() -> [UInt8] { Int64(self).storagePayload() }
    init?(storagePayload payload: ArraySlice<UInt8>) {
        guard let value = Int64(storagePayload: payload), let exact = Int32(exactly: value) else { return nil }
        self = exact
    }
}

extension Double: CompactStorable {
    static var storageTag: StorageTag { .double }
    func storagePayload() -> [UInt8] { withUnsafeBytes(of: bitPattern.littleEndian) { Array($0) } }
    init?(storagePayload payload: ArraySlice<UInt8>) {
        guard payload.count == 8 else { return nil }
        var bits: UInt64 = 0
        for (shift, byte) in payload.enumerated() { bits |= UInt64(byte) << (8 * UInt64(shift)) }
        self = Double(bitPattern: bits)
    }
}

extension Bool: CompactStorable {
    static var storageTag: StorageTag { .boolean }
    func storagePayload() -> [UInt8] { [self ? 1 : 0] }
    init?(storagePayload payload: ArraySlice<UInt8>) {
        guard payload.count == 1 else { return nil }
        self = payload.first! != 0
    }
}

extension String: CompactStorable {
    static var storageTag: StorageTag { .string }
    func storagePayload() -> [UInt8] { Array(utf8) }
    init?(storagePayload payload: ArraySlice<UInt8>) { self = String(decoding: payload, as: UTF8.self) }
}

extension Array: CompactStorable where Element == UInt8 {
    static var storageTag: StorageTag { .bytes }
    func storagePayload() -> [UInt8] { self }
    init?(storagePayload payload: ArraySlice<UInt8>) { self = Array(payload) }
}

extension Data: CompactStorable {
    static var storageTag: StorageTag { .bytes }
    func storagePayload() -> [UInt8] { Array(self) }
    init?(storagePayload payload: ArraySlice<UInt8>) { self = Data(payload) }
}

/// A stored value of any type, for code that reads values without knowing their types in advance
/// (for example a `list()` over keys that hold different types).
public enum StorageValue: Sendable, Hashable, Codable {
    /// An integer.
    case integer(Int64)
    /// A double.
    case double(Double)
    /// A boolean.
    case boolean(Bool)
    /// A string.
    case string(String)
    /// Bytes.
    case bytes([UInt8])
    /// A `Codable` value, as its JSON text.
    case json(String)

    /// Decodes this value as `T` (a JSON value through `JSONDecoder`).
    public func decode<T: Decodable>(as type: T.Type = T.self) throws -> T {
        try StorageValueCoding.decode(StorageValueCoding.encode(self), as: T.self, key: "")
    }
}

/// Encodes and decodes stored values.
enum StorageValueCoding {
    static func encode<V: Encodable>(_ value: V) throws -> [UInt8] {
        if let value = value as? StorageValue {
            switch value {
            case .integer(let integer): return [StorageTag.integer.rawValue] + integer.storagePayload()
            case .double(let double): return [StorageTag.double.rawValue] + double.storagePayload()
            case .boolean(let boolean): return [StorageTag.boolean.rawValue] + boolean.storagePayload()
            case .string(let string): return [StorageTag.string.rawValue] + Array(string.utf8)
            case .bytes(let bytes): return [StorageTag.bytes.rawValue] + bytes
            case .json(let text): return [StorageTag.json.rawValue] + Array(text.utf8)
            }
        }
        if let compact = value as? any CompactStorable {
            return [type(of: compact).storageTag.rawValue] + compact.storagePayload()
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return [StorageTag.json.rawValue] + Array(try encoder.encode(value))
    }

    static func decode<V: Decodable>(_ bytes: [UInt8], as type: V.Type, key: String) throws -> V {
        guard let first = bytes.first, let tag = StorageTag(rawValue: first) else {
            throw DurableObjectError.invalid("The value stored under '\(key)' is not in a known encoding.")
        }
        let payload = bytes[1...]
        if V.self == StorageValue.self {
            let value: StorageValue? =
                switch tag {
                case .integer: Int64(storagePayload: payload).map { .integer($0) }
                case .double: Double(storagePayload: payload).map { .double($0) }
                case .boolean: Bool(storagePayload: payload).map { .boolean($0) }
                case .string: .string(String(decoding: payload, as: UTF8.self))
                case .bytes: .bytes(Array(payload))
                case .json: .json(String(decoding: payload, as: UTF8.self))
                }
            guard let value else { throw mismatch(key, tag, V.self) }
            return value as! V
        }
        if let compact = V.self as? any CompactStorable.Type {
            guard compact.storageTag == tag, let value = compact.init(storagePayload: payload) else {
                throw mismatch(key, tag, V.self)
            }
            return value as! V
        }
        guard tag == .json else { throw mismatch(key, tag, V.self) }
        do {
            return try JSONDecoder().decode(V.self, from: Data(payload))
        } catch {
            throw DurableObjectError.invalid("The value stored under '\(key)' cannot be read as \(V.self): \(error)")
        }
    }

    private static func mismatch(_ key: String, _ tag: StorageTag, _ type: Any.Type) -> DurableObjectError {
        DurableObjectError.invalid("The value stored under '\(key)' is \(tag.noun), not \(type).")
    }
}

extension StorageTag {
    var noun: String {
        switch self {
        case .integer: "an integer"
        case .double: "a double"
        case .boolean: "a boolean"
        case .string: "a string"
        case .bytes: "bytes"
        case .json: "a JSON value"
        }
    }
}
