/// A random name given to a database when it is created, kept in the database itself: what tells one database
/// apart from another that took its place (a wiped folder, a restore from elsewhere, another cluster's).
public enum DatabaseIdentity {
    /// The identity stored under `key` in `family`, made (16 random bytes, as 32 hex digits) and written with a synced
    /// write when there is none yet.
    ///
    /// - Returns: the identity, and whether this call made it.
    public static func loadOrCreate(
        in database: Database, family: ColumnFamily, key: [UInt8]
    ) throws -> (identity: String, isNew: Bool) {
        if let stored = try database.get(key, in: family) {
            return (String(decoding: stored, as: UTF8.self), false)
        }
        var generator = SystemRandomNumberGenerator()
        let identity = (0..<16).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte, radix: 16).count == 1 ? "0" + String(byte, radix: 16) : String(byte, radix: 16)
        }.joined()
        var batch = WriteBatch()
        batch.put(Array(identity.utf8), forKey: key, in: family)
        try database.write(batch, sync: true)
        return (identity, true)
    }
}
