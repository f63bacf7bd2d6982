/// The limits of the storage API and their errors (SEMANTICS.md §3), word for word.
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

    static func checkValue(_ value: [UInt8]) throws {
        guard value.count <= maxValueBytes else {
            throw DurableObjectError.invalid(
                "Values cannot be larger than \(maxValueBytes) bytes. A value of size \(value.count) was provided.")
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
