import Foundation

/// What ``Database/writeCheckpoint(into:)`` wrote.
public struct CheckpointReport: Sendable, Equatable {
    /// The checkpoint's folder.
    public var path: String
    /// The number of files in it.
    public var files: Int
    /// Their total size in bytes (files hard-linked to the live database's count in full).
    public var bytes: UInt64

    /// Creates a report.
    public init(path: String, files: Int, bytes: UInt64) {
        self.path = path
        self.files = files
        self.bytes = bytes
    }
}

extension Database {
    /// Writes a checkpoint of the whole database into `directory` (see ``checkpoint(to:)``), creating the folders
    /// above it, and measures what was written. Runs on a thread of its own: a checkpoint flushes the memtables and
    /// may take a while.
    ///
    /// - Throws: ``StorageError/Code-swift.struct/invalidArgument`` naming the folder when it exists already;
    ///   RocksDB's error when the checkpoint cannot be written.
    public func writeCheckpoint(into directory: String) async throws -> CheckpointReport {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(with: Result { try self.writeCheckpointBlocking(into: directory) })
            }
        }
    }

    private func writeCheckpointBlocking(into directory: String) throws -> CheckpointReport {
        let manager = FileManager.default
        guard !manager.fileExists(atPath: directory) else {
            throw StorageError(
                .invalidArgument, "\(directory) exists already: a checkpoint is written into a new folder")
        }
        let parent = (directory as NSString).deletingLastPathComponent
        if !parent.isEmpty {
            do {
                try manager.createDirectory(atPath: parent, withIntermediateDirectories: true)
            } catch {
                throw StorageError(.invalidArgument, "cannot create \(parent): \(error.localizedDescription)")
            }
        }
        try checkpoint(to: directory)
        var files = 0
        var bytes: UInt64 = 0
        for name in try manager.contentsOfDirectory(atPath: directory) {
            let attributes = try manager.attributesOfItem(atPath: (directory as NSString).appendingPathComponent(name))
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            files += 1
            bytes += (attributes[.size] as? NSNumber)?.uint64Value ?? 0
        }
        return CheckpointReport(path: directory, files: files, bytes: bytes)
    }
}
