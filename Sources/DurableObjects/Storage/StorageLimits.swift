/// The limits of the storage API and their errors (<doc:Semantics#Storage>), word for word.
enum StorageLimits {
    static let maxKeyBytes = 2048
    static let maxValueBytes = 131_072
    static let maxBatch = 128

    static func checkKey(_ key: [UInt8]) throws {
        guard key.count <= maxKeyBytes else {
            throw DurableObjectError.invalid(
                "Keys cannot be larger than \(maxKeyBytes) bytes. A key of size \(key.count) was provided.")
        }
    }

    /// Checks the size of an encoded value: the user's data, that is the encoding less its one type-tag byte.
    static func checkValue(_ encoded: [UInt8]) throws {
        let size = max(encoded.count - 1, 0)
        guard size <= maxValueBytes else {
            throw DurableObjectError.invalid(
                "Values cannot be larger than \(maxValueBytes) bytes. A value of size \(size) was provided.")
        }
    }

    static func checkGetCount(_ count: Int) throws {
        guard count <= maxBatch else {
            throw DurableObjectError.invalid(
                "Maximum number of key value pairs is \(maxBatch). \(count) pairs were provided.")
        }
    }

    static func checkPutCount(_ count: Int) throws {
        guard count <= maxBatch else { throw DurableObjectError.invalid("Maximum number of pairs is \(maxBatch).") }
    }

    static func checkDeleteCount(_ count: Int) throws {
        guard count <= maxBatch else { throw DurableObjectError.invalid("Maximum number of keys is \(maxBatch).") }
    }

    static let deleteAllInTransaction = DurableObjectError.invalid("Cannot call deleteAll() within a transaction")
}
