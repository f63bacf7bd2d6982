import CRocksDB
import Foundation
import Synchronization

/// How a ``Database`` is opened.
public struct DatabaseOptions: Sendable {
    /// Create the database folder and files when they do not exist.
    public var createIfMissing: Bool = true
    /// Background threads for flushes and compactions.
    public var backgroundJobs: Int = 2
    /// Bytes of the in-memory write buffer per column family before it is flushed to a file.
    public var writeBufferSize: Int = 64 << 20

    /// The defaults: create when missing, two background jobs, 64 MiB write buffers.
    public init() {}
}

/// An open RocksDB database with its column families.
///
/// All methods are safe to call from any thread. Reads and writes run concurrently; ``close()`` and
/// ``dropColumnFamily(named:)`` wait for calls in progress and make later calls throw rather than touch freed
/// C handles. Every RocksDB failure is thrown as a ``StorageError`` carrying RocksDB's message.
///
/// The calls block the calling thread for as long as RocksDB takes (a synced write waits for `fsync`): call them
/// from a thread of your own or through ``GroupCommitter``, not from many tasks of the cooperative pool at once.
public final class Database: @unchecked Sendable {
    /// The folder the database lives in.
    public let path: String
    /// A number unique to this handle in the process, so that a column family of another handle is refused.
    let instanceID: UInt64

    private static let instanceCounter = Atomic<UInt64>(0)

    // Guarded by `lock`: read under the shared lock, changed under the exclusive one.
    private let lock = ReadWriteLock()
    private var handle: OpaquePointer?
    private var families: [String: ColumnFamily] = [:]

    private let options: OpaquePointer
    private let readOptions: OpaquePointer
    private let syncedWrite: OpaquePointer
    private let unsyncedWrite: OpaquePointer

    /// Held while a write is applied with replication, so that writes reach the replication in the order they
    /// were applied.
    private let writeOrder = Mutex<Void>(())
    private let replicationHook = Mutex<(any WriteReplication)?>(nil)

    private let snapshots = Mutex<(next: UInt64, open: [UInt64: SnapshotPointer])>((1, [:]))

    /// A C snapshot pointer; only used under the database's lock.
    private struct SnapshotPointer: @unchecked Sendable { let pointer: OpaquePointer }

    /// Opens (or creates) the database in `path` with every column family it has.
    ///
    /// - Throws: ``StorageError`` with RocksDB's message when the folder cannot be opened, for example because
    ///   another handle, in this process or another, holds its lock.
    public init(path: String, options databaseOptions: DatabaseOptions = DatabaseOptions()) throws {
        self.path = path
        self.instanceID = Database.instanceCounter.wrappingAdd(1, ordering: .relaxed).newValue

        let options = rocksdb_options_create()!
        rocksdb_options_set_create_if_missing(options, databaseOptions.createIfMissing ? 1 : 0)
        rocksdb_options_set_create_missing_column_families(options, 1)
        rocksdb_options_increase_parallelism(options, Int32(max(1, databaseOptions.backgroundJobs)))
        rocksdb_options_set_max_background_jobs(options, Int32(max(1, databaseOptions.backgroundJobs)))
        rocksdb_options_set_write_buffer_size(options, databaseOptions.writeBufferSize)
        self.options = options
        self.readOptions = rocksdb_readoptions_create()
        self.syncedWrite = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(syncedWrite, 1)
        self.unsyncedWrite = rocksdb_writeoptions_create()
        // From here on every stored property is set, so `deinit` frees the options even when opening fails.

        var names = (try? Database.columnFamilyNames(atPath: path, options: options)) ?? []
        if !names.contains("default") { names.insert("default", at: 0) }
        var handles = [OpaquePointer?](repeating: nil, count: names.count)
        let familyOptions = [OpaquePointer?](repeating: options, count: names.count)
        let db = try withCStrings(names) { cNames throws in
            try rocksCall("cannot open the database at \(path)") { error in
                familyOptions.withUnsafeBufferPointer { optionPointers in
                    rocksdb_open_column_families(
                        options, path, Int32(names.count), cNames, optionPointers.baseAddress, &handles, error)
                }
            }
        }
        guard let db else { throw StorageError(.rocksDB, "cannot open the database at \(path)") }
        self.handle = db
        for (name, familyHandle) in zip(names, handles) {
            families[name] = ColumnFamily(name: name, handle: familyHandle!, databaseID: instanceID)
        }
    }

    deinit {
        close()
        rocksdb_options_destroy(options)
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncedWrite)
        rocksdb_writeoptions_destroy(unsyncedWrite)
    }

    /// The names of the column families stored in the database at `path`, without opening it.
    ///
    /// - Throws: ``StorageError`` when there is no database there or it cannot be read.
    public static func columnFamilyNames(atPath path: String) throws -> [String] {
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        return try columnFamilyNames(atPath: path, options: options)
    }

    private static func columnFamilyNames(atPath path: String, options: OpaquePointer) throws
        -> [String]
    {
        var count = 0
        let list = try rocksCall("cannot list the column families of \(path)") { error in
            rocksdb_list_column_families(options, path, &count, error)
        }
        guard let list else { return [] }
        defer { rocksdb_list_column_families_destroy(list, count) }
        return (0..<count).map { String(cString: list[$0]!) }
    }

    /// RocksDB's estimate of the data the database holds, in bytes: every column family's live data after
    /// compaction (`rocksdb.estimate-live-data-size`) plus its memtables (`rocksdb.cur-size-all-mem-tables`).
    /// Cheap (no data is read); 0 once closed.
    public func estimatedDataSize() -> UInt64 {
        lock.withReadLock {
            guard let db = handle else { return 0 }
            var total: UInt64 = 0
            for family in families.values {
                for property in ["rocksdb.estimate-live-data-size", "rocksdb.cur-size-all-mem-tables"] {
                    guard let value = rocksdb_property_value_cf(db, family.handle, property) else { continue }
                    total += UInt64(String(cString: value)) ?? 0
                    rocksdb_free(value)
                }
            }
            return total
        }
    }

    /// Closes the database: waits for calls in progress, releases open snapshots and column family handles,
    /// then closes RocksDB (flushing nothing that is not already in the write-ahead log). Later calls throw
    /// ``StorageError/Code-swift.struct/closed``. Closing twice does nothing.
    public func close() {
        lock.withWriteLock {
            guard let db = handle else { return }
            snapshots.withLock { state in
                for snapshot in state.open.values { rocksdb_release_snapshot(db, snapshot.pointer) }
                state.open.removeAll()
            }
            for family in families.values {
                family.isInvalidated = true
                rocksdb_column_family_handle_destroy(family.handle)
            }
            families.removeAll()
            rocksdb_close(db)
            handle = nil
        }
    }

    /// Whether ``close()`` has run.
    public var isClosed: Bool { lock.withReadLock { handle == nil } }

    // MARK: Column families

    /// The names of the open column families, sorted.
    public var columnFamilyNames: [String] {
        lock.withReadLock { families.keys.sorted() }
    }

    /// The column family named `"default"`, which every database has.
    public var defaultColumnFamily: ColumnFamily {
        get throws { try columnFamily(named: "default") }
    }

    /// The column family named `name`.
    ///
    /// - Throws: ``StorageError/Code-swift.struct/columnFamilyNotFound`` when there is none.
    public func columnFamily(named name: String) throws -> ColumnFamily {
        try lock.withReadLock { () throws -> ColumnFamily in
            guard handle != nil else { throw closedError }
            guard let family = families[name] else {
                throw StorageError(.columnFamilyNotFound, "no column family named '\(name)' in \(path)")
            }
            return family
        }
    }

    /// Creates the column family `name`.
    ///
    /// - Throws: ``StorageError/Code-swift.struct/columnFamilyExists`` when it exists already, or RocksDB's error.
    public func createColumnFamily(named name: String) throws -> ColumnFamily {
        try lock.withWriteLock { () throws -> ColumnFamily in
            guard families[name] == nil else {
                throw StorageError(.columnFamilyExists, "a column family named '\(name)' exists already in \(path)")
            }
            return try createLocked(name)
        }
    }

    /// The column family `name`, created when it does not exist yet.
    public func ensureColumnFamily(named name: String) throws -> ColumnFamily {
        if let family = try? columnFamily(named: name) { return family }
        return try lock.withWriteLock { () throws -> ColumnFamily in
            if let family = families[name] { return family }
            return try createLocked(name)
        }
    }

    private func createLocked(_ name: String) throws -> ColumnFamily {
        guard let db = handle else { throw closedError }
        guard !name.isEmpty else { throw StorageError(.invalidArgument, "a column family name cannot be empty") }
        let familyHandle = try rocksCall("cannot create column family '\(name)'") { error in
            rocksdb_create_column_family(db, options, name, error)
        }
        guard let familyHandle else { throw StorageError(.rocksDB, "cannot create column family '\(name)'") }
        let family = ColumnFamily(name: name, handle: familyHandle, databaseID: instanceID)
        families[name] = family
        return family
    }

    /// Drops the column family `name` and all its data. Handles to it become unusable.
    ///
    /// - Throws: ``StorageError/Code-swift.struct/columnFamilyNotFound`` when there is none;
    ///   ``StorageError/Code-swift.struct/invalidArgument`` for `"default"`, which cannot be dropped.
    public func dropColumnFamily(named name: String) throws {
        try lock.withWriteLock { () throws in
            guard let db = handle else { throw closedError }
            guard name != "default" else {
                throw StorageError(.invalidArgument, "the default column family cannot be dropped")
            }
            guard let family = families[name] else {
                throw StorageError(.columnFamilyNotFound, "no column family named '\(name)' in \(path)")
            }
            try rocksCall("cannot drop column family '\(name)'") { error in
                rocksdb_drop_column_family(db, family.handle, error)
            }
            family.isInvalidated = true
            rocksdb_column_family_handle_destroy(family.handle)
            families[name] = nil
        }
    }

    // MARK: Reads

    /// The value stored under `key` in `family`, or `nil`.
    public func get(_ key: [UInt8], in family: ColumnFamily, snapshot: Snapshot? = nil) throws
        -> [UInt8]?
    {
        try withReadAccess(family, snapshot) { db, readOptions throws -> [UInt8]? in
            let pinned = try key.withCChars { k, kl throws in
                try rocksCall("cannot read from '\(family.name)'") { error in
                    rocksdb_get_pinned_cf(db, readOptions, family.handle, k, kl, error)
                }
            }
            guard let pinned else { return nil }
            defer { rocksdb_pinnableslice_destroy(pinned) }
            var length = 0
            let value = rocksdb_pinnableslice_value(pinned, &length)
            return copyBytes(value, length)
        }
    }

    /// The values stored under `keys` in `family`, in the order of `keys`; `nil` where a key has no value.
    public func multiGet(_ keys: [[UInt8]], in family: ColumnFamily, snapshot: Snapshot? = nil)
        throws -> [[UInt8]?]
    {
        guard !keys.isEmpty else { return [] }
        return try withReadAccess(family, snapshot) { db, readOptions throws -> [[UInt8]?] in
            let count = keys.count
            var values = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            var valueLengths = [Int](repeating: 0, count: count)
            var errors = [UnsafeMutablePointer<CChar>?](repeating: nil, count: count)
            let families = [OpaquePointer?](repeating: family.handle, count: count)
            let keyBuffers = keys.map { key -> UnsafeMutableBufferPointer<CChar> in
                let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(1, key.count))
                key.withCChars { k, kl in if kl > 0 { buffer.baseAddress!.initialize(from: k!, count: kl) } }
                return buffer
            }
            defer { keyBuffers.forEach { $0.deallocate() } }
            let keyPointers: [UnsafePointer<CChar>?] = keyBuffers.map { UnsafePointer($0.baseAddress) }
            let keyLengths = keys.map(\.count)
            rocksdb_multi_get_cf(
                db, readOptions, families, count, keyPointers, keyLengths, &values, &valueLengths, &errors)
            defer {
                for index in 0..<count {
                    if let value = values[index] { rocksdb_free(value) }
                    if let error = errors[index] { rocksdb_free(error) }
                }
            }
            if let error = errors.first(where: { $0 != nil }) {
                throw StorageError(.rocksDB, "cannot read from '\(family.name)': \(String(cString: error!))")
            }
            return (0..<count).map { index in
                values[index].map { copyBytes(UnsafePointer($0), valueLengths[index]) }
            }
        }
    }

    /// Visits the entries that `options` selects, in order, until `body` returns `false` or the limit is reached.
    public func forEach(
        in family: ColumnFamily,
        _ options: ScanOptions = ScanOptions(),
        _ body: (_ key: [UInt8], _ value: [UInt8]) throws -> Bool
    ) throws {
        guard let bounds = options.effectiveBounds else { return }
        if let limit = options.limit, limit <= 0 { return }
        try withReadAccess(family, options.snapshot) { db, baseReadOptions throws in
            let readOptions = rocksdb_readoptions_create()!
            defer { rocksdb_readoptions_destroy(readOptions) }
            if let snapshot = options.snapshot {
                guard let pointer = snapshotPointer(snapshot) else { throw releasedSnapshotError }
                rocksdb_readoptions_set_snapshot(readOptions, pointer)
            }
            // RocksDB keeps the bound pointers: the copies must outlive the iterator.
            let lower = bounds.lower.map(Self.copyToHeap)
            let upper = bounds.upper.map(Self.copyToHeap)
            defer {
                lower?.deallocate()
                upper?.deallocate()
            }
            if let lower { rocksdb_readoptions_set_iterate_lower_bound(readOptions, lower.baseAddress, lower.count) }
            if let upper { rocksdb_readoptions_set_iterate_upper_bound(readOptions, upper.baseAddress, upper.count) }
            let iterator = rocksdb_create_iterator_cf(db, readOptions, family.handle)!
            defer { rocksdb_iter_destroy(iterator) }

            if options.reverse { rocksdb_iter_seek_to_last(iterator) } else { rocksdb_iter_seek_to_first(iterator) }
            var visited = 0
            while rocksdb_iter_valid(iterator) != 0 {
                var keyLength = 0
                var valueLength = 0
                let key = copyBytes(rocksdb_iter_key(iterator, &keyLength), keyLength)
                let value = copyBytes(rocksdb_iter_value(iterator, &valueLength), valueLength)
                visited += 1
                guard try body(key, value) else { return }
                if let limit = options.limit, visited >= limit { return }
                if options.reverse { rocksdb_iter_prev(iterator) } else { rocksdb_iter_next(iterator) }
            }
            try rocksCall("cannot scan '\(family.name)'") { error in rocksdb_iter_get_error(iterator, error) }
        }
    }

    /// The entries that `options` selects, in order.
    public func scan(in family: ColumnFamily, _ options: ScanOptions = ScanOptions()) throws
        -> [KeyValue]
    {
        var entries: [KeyValue] = []
        do {
            try forEach(in: family, options) { key, value in
                entries.append(KeyValue(key: key, value: value))
                return true
            }
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError(.rocksDB, "\(error)")
        }
        return entries
    }

    private static func copyToHeap(_ bytes: [UInt8]) -> UnsafeMutableBufferPointer<CChar> {
        let buffer = UnsafeMutableBufferPointer<CChar>.allocate(capacity: max(1, bytes.count))
        bytes.withCChars { pointer, length in
            if length > 0 { buffer.baseAddress!.initialize(from: pointer!, count: length) }
        }
        return UnsafeMutableBufferPointer(rebasing: buffer[0..<bytes.count])
    }

    // MARK: Writes

    /// Applies `batch` atomically. With `sync`, returns only after the write-ahead log is synced to disk.
    ///
    /// - Throws: ``StorageError`` when a column family of the batch is unusable (nothing is written then) or
    ///   RocksDB fails the write.
    public func write(_ batch: WriteBatch, sync: Bool) throws {
        try write([batch], sync: sync)
    }

    /// Applies `batch` atomically and syncs the write-ahead log, on a thread of its own: the caller's task suspends
    /// instead of blocking a thread of Swift's small cooperative pool (or an event loop) for the sync.
    ///
    /// - Throws: like ``write(_:sync:)``.
    /// With a ``WriteReplication`` installed, it returns once the copy has the write too.
    public func writeSynced(_ batch: WriteBatch) async throws {
        let sequence = try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<UInt64?, any Error>) in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try self.writeReplicated([batch], sync: true) })
            }
        }
        guard let sequence, let replication else { return }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            replication.whenReplicated(sequence) { continuation.resume(with: $0) }
        }
    }

    /// Applies several batches as one atomic write (one synced log write when `sync`). With a
    /// ``WriteReplication`` installed, the write is also handed to it, in the same order as it is applied here;
    /// the caller does not wait for the copy (``writeSynced(_:)`` and ``GroupCommitter`` do).
    func write(_ batches: [WriteBatch], sync: Bool) throws {
        _ = try writeReplicated(batches, sync: sync)
    }

    /// Applies `batches` as one atomic write and, when a ``WriteReplication`` is installed, hands them to it under
    /// the same lock, so that the copy receives writes in the order they were applied here.
    ///
    /// - Returns: the replication's sequence number of the write, or `nil` without replication.
    func writeReplicated(_ batches: [WriteBatch], sync: Bool) throws -> UInt64? {
        guard let replication = replicationHook.withLock({ $0 }) else {
            try writeLocally(batches, sync: sync)
            return nil
        }
        return try writeOrder.withLock { _ in
            let ticket = try replication.prepare(batches)
            do {
                try writeLocally(batches + [ticket.localWrites], sync: sync)
            } catch {
                replication.localWriteFailed(sequence: ticket.sequence, error: error)
                throw error
            }
            return ticket.sequence
        }
    }

    /// Sends every later write through `replication` as well (see ``WriteReplication``); `nil` stops it.
    public func replicate(through replication: (any WriteReplication)?) {
        writeOrder.withLock { _ in replicationHook.withLock { $0 = replication } }
    }

    /// The replication writes go through, if any.
    public var replication: (any WriteReplication)? { replicationHook.withLock { $0 } }

    /// Runs `body` while no write is being applied: what it reads (a snapshot, a replication's sequence) is
    /// between two writes.
    public func betweenWrites<T>(_ body: () throws -> T) rethrows -> T {
        try writeOrder.withLock { _ in try body() }
    }

    private func writeLocally(_ batches: [WriteBatch], sync: Bool) throws {
        try lock.withReadLock { () throws in
            guard let db = handle else { throw closedError }
            for batch in batches {
                for family in batch.families { try check(family) }
            }
            let cBatch = rocksdb_writebatch_create()!
            defer { rocksdb_writebatch_destroy(cBatch) }
            for batch in batches { batch.encode(into: cBatch) }
            try rocksCall("cannot write to \(path)") { error in
                rocksdb_write(db, sync ? syncedWrite : unsyncedWrite, cBatch, error)
            }
        }
    }

    /// Throws unless every column family `batch` touches is usable in this database.
    func validate(_ batch: WriteBatch) throws {
        try lock.withReadLock { () throws in
            guard handle != nil else { throw closedError }
            for family in batch.families { try check(family) }
        }
    }

    /// Forces the memtables of every column family to files. Not needed for durability (the write-ahead log
    /// gives that); useful before measuring file sizes.
    public func flush() throws {
        try lock.withReadLock { () throws in
            guard let db = handle else { throw closedError }
            let flushOptions = rocksdb_flushoptions_create()!
            defer { rocksdb_flushoptions_destroy(flushOptions) }
            rocksdb_flushoptions_set_wait(flushOptions, 1)
            for family in families.values {
                try rocksCall("cannot flush '\(family.name)'") { error in
                    rocksdb_flush_cf(db, flushOptions, family.handle, error)
                }
            }
        }
    }

    // MARK: Snapshots and checkpoints

    /// Takes a snapshot: reads through it see the database as it is now.
    public func snapshot() throws -> Snapshot {
        try lock.withReadLock { () throws -> Snapshot in
            guard let db = handle else { throw closedError }
            let pointer = rocksdb_create_snapshot(db)!
            let serial = snapshots.withLock { state in
                let serial = state.next
                state.next += 1
                state.open[serial] = SnapshotPointer(pointer: pointer)
                return serial
            }
            return Snapshot(database: self, serial: serial)
        }
    }

    func releaseSnapshot(_ serial: UInt64) {
        lock.withReadLock {
            guard let db = handle else { return }
            if let pointer = snapshots.withLock({ $0.open.removeValue(forKey: serial) }) {
                rocksdb_release_snapshot(db, pointer.pointer)
            }
        }
    }

    private func snapshotPointer(_ snapshot: Snapshot) -> OpaquePointer? {
        guard snapshot.database === self else { return nil }
        return snapshots.withLock { $0.open[snapshot.serial] }?.pointer
    }

    /// Writes an online, consistent copy of the whole database into `directory`, which must not exist yet.
    /// The copy opens as a database of its own. Files are hard-linked where the file system allows.
    public func checkpoint(to directory: String) throws {
        try lock.withReadLock { () throws in
            guard let db = handle else { throw closedError }
            let checkpoint = try rocksCall("cannot start a checkpoint of \(path)") { error in
                rocksdb_checkpoint_object_create(db, error)
            }
            guard let checkpoint else { throw StorageError(.rocksDB, "cannot start a checkpoint of \(path)") }
            defer { rocksdb_checkpoint_object_destroy(checkpoint) }
            try rocksCall("cannot write a checkpoint of \(path) to \(directory)") { error in
                rocksdb_checkpoint_create(checkpoint, directory, 0, error)
            }
        }
    }

    // MARK: Helpers

    private var closedError: StorageError { StorageError(.closed, "the database at \(path) is closed") }
    private var releasedSnapshotError: StorageError {
        StorageError(.invalidArgument, "the snapshot was released or belongs to another database")
    }

    /// Throws unless `family` is usable here. Call with the lock held.
    private func check(_ family: ColumnFamily) throws {
        guard family.databaseID == instanceID else {
            throw StorageError(.columnFamilyUnavailable, "column family '\(family.name)' belongs to another database")
        }
        guard !family.isInvalidated else {
            throw StorageError(.columnFamilyUnavailable, "column family '\(family.name)' was dropped")
        }
    }

    /// Runs `body` under the shared lock with the C handle and read options (with the snapshot set, if any).
    private func withReadAccess<R>(
        _ family: ColumnFamily,
        _ snapshot: Snapshot?,
        _ body: (OpaquePointer, OpaquePointer) throws -> R
    ) throws -> R {
        try lock.withReadLock { () throws -> R in
            guard let db = handle else { throw closedError }
            try check(family)
            guard let snapshot else { return try body(db, readOptions) }
            guard let pointer = snapshotPointer(snapshot) else { throw releasedSnapshotError }
            let options = rocksdb_readoptions_create()!
            defer { rocksdb_readoptions_destroy(options) }
            rocksdb_readoptions_set_snapshot(options, pointer)
            return try body(db, options)
        }
    }
}

/// Calls `body` with `strings` as an array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) throws -> R)
    throws -> R
{
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return try body(copies.map { UnsafePointer($0) })
}
