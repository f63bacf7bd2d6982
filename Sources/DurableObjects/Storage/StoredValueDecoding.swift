extension StorageValue {
    /// Decodes a value as the storage API stored it (one tag byte, then the payload), for tools that read a
    /// database without knowing the types objects stored.
    ///
    /// - Parameters:
    ///   - storedBytes: the value's bytes as they are in the database.
    ///   - key: the key the value is stored under, for the error message.
    /// - Throws: `The value stored under '<key>' is not in a known encoding.` (or a payload that does not decode).
    public init(storedBytes: [UInt8], key: String) throws {
        self = try StorageValueCoding.decode(storedBytes, as: StorageValue.self, key: key)
    }
}
