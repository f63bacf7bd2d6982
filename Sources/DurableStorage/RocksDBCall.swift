import CRocksDB

/// Runs a RocksDB C call that reports failure through an `errptr` out-parameter and turns a failure into a
/// thrown ``StorageError``.
///
/// Debian builds RocksDB with assertions on: a null `errptr` aborts the process. Every call goes through here so
/// that a real pointer is always passed and the C string is always freed.
@inline(__always)
func rocksCall<Result>(
    _ context: @autoclosure () -> String, _ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Result
) throws(StorageError) -> Result {
    var error: UnsafeMutablePointer<CChar>? = nil
    let result = body(&error)
    if let error {
        let message = String(cString: error)
        rocksdb_free(error)
        throw StorageError(.rocksDB, "\(context()): \(message)")
    }
    return result
}

extension Array where Element == UInt8 {
    /// Calls `body` with the bytes as a `char` pointer and a length, the shape RocksDB's C API takes.
    @inline(__always)
    func withCChars<R>(_ body: (UnsafePointer<CChar>?, Int) throws -> R) rethrows -> R {
        try withUnsafeBufferPointer { buffer in
            try buffer.withMemoryRebound(to: CChar.self) { chars in
                try body(chars.baseAddress, chars.count)
            }
        }
    }
}

/// Copies `length` bytes at `pointer` into a new array.
@inline(__always)
func copyBytes(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> [UInt8] {
    guard let pointer, length > 0 else { return [] }
    return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
        Array(UnsafeBufferPointer(start: $0, count: length))
    }
}
