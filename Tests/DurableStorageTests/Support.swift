import TestSupport

extension String {
    var bytes: [UInt8] { Array(utf8) }
}

extension Array where Element == UInt8 {
    var string: String { String(decoding: self, as: UTF8.self) }
}

extension TemporaryDirectory {
    /// A folder labelled for the storage tests.
    convenience init() { self.init("storage") }
}
