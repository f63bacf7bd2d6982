/// The layout of object storage inside a column family: every stored key is the 32-byte object id followed by
/// the user's key as UTF-8.
///
/// Because the id comes first, one object's keys form one contiguous range, and within it keys sort by the raw
/// UTF-8 bytes of the user key (so `"Z"` < `"Ｚ"` (U+FF3A) < `"𝙕"` (U+1D655), unlike UTF-16 order).
public enum ObjectKeySpace {
    /// The length of an object id in bytes.
    public static let objectIDLength = 32

    /// The stored key for `userKey` of the object `objectID`.
    public static func storageKey(objectID: [UInt8], userKey: some StringProtocol) -> [UInt8] {
        storageKey(objectID: objectID, userKeyBytes: Array(userKey.utf8))
    }

    /// The stored key for the user key bytes `userKeyBytes` of the object `objectID`.
    public static func storageKey(objectID: [UInt8], userKeyBytes: [UInt8]) -> [UInt8] {
        precondition(objectID.count == objectIDLength, "an object id is \(objectIDLength) bytes")
        var key = [UInt8]()
        key.reserveCapacity(objectIDLength + userKeyBytes.count)
        key.append(contentsOf: objectID)
        key.append(contentsOf: userKeyBytes)
        return key
    }

    /// The user key part of a stored key.
    public static func userKeyBytes(ofStorageKey storageKey: [UInt8]) -> ArraySlice<UInt8> {
        storageKey[objectIDLength...]
    }

    /// The user key of a stored key, decoded as UTF-8.
    public static func userKey(ofStorageKey storageKey: [UInt8]) -> String {
        String(decoding: userKeyBytes(ofStorageKey: storageKey), as: UTF8.self)
    }

    /// The object id part of a stored key.
    public static func objectID(ofStorageKey storageKey: [UInt8]) -> [UInt8] {
        Array(storageKey[..<objectIDLength])
    }

    /// The range `[lower, upper)` that holds every key of `objectID`; `upper` is `nil` for the all-`0xFF` id,
    /// whose range runs to the end of the column family.
    public static func range(ofObject objectID: [UInt8]) -> (lower: [UInt8], upper: [UInt8]?) {
        precondition(objectID.count == objectIDLength, "an object id is \(objectIDLength) bytes")
        return (objectID, KeyBytes.successor(ofPrefix: objectID))
    }

    /// Scan options that visit the keys of `objectID` whose user keys lie in `[start, end)` (either side open
    /// when `nil`) and begin with `prefix`.
    public static func scanOptions(
        objectID: [UInt8],
        start: [UInt8]? = nil,
        end: [UInt8]? = nil,
        prefix: [UInt8]? = nil,
        reverse: Bool = false,
        limit: Int? = nil,
        snapshot: Snapshot? = nil
    ) -> ScanOptions {
        let whole = range(ofObject: objectID)
        return ScanOptions(
            lowerBound: start.map { storageKey(objectID: objectID, userKeyBytes: $0) } ?? whole.lower,
            upperBound: end.map { storageKey(objectID: objectID, userKeyBytes: $0) } ?? whole.upper,
            prefix: storageKey(objectID: objectID, userKeyBytes: prefix ?? []),
            reverse: reverse,
            limit: limit,
            snapshot: snapshot
        )
    }
}
