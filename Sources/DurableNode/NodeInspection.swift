import DurableObjects
import DurableProtocol
import DurableStorage
import DurableWire
import Foundation

/// The node's operator methods: read-only listings of its objects, their storage and its slots' usage, and
/// checkpoints. Reads go to
/// the database directly, so they never activate an object nor wait behind its events.
extension ObjectService {
    /// The methods ``inspect(_:)`` serves.
    static let inspectionMethods: Set<String> = [
        Methods.nodeListObjects, Methods.nodeListStorage, Methods.nodeGetStorage, Methods.nodeCheckpoint,
        Methods.nodeSlotUsage,
    ]

    /// The most value and key bytes one `ListStorage` answer carries (frames are at most 16 MiB).
    static let maximumListingBytes = 4 << 20
    /// The most objects one `ListObjects` answer carries.
    static let maximumListedObjects = 10_000

    /// Runs blocking work on a thread of its own and waits for it without blocking the caller's thread.
    static func onOwnThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
        }
    }

    /// Serves one of ``inspectionMethods``.
    func inspect(_ call: IncomingCall) async throws -> [UInt8] {
        do {
            switch call.method {
            case Methods.nodeListObjects:
                return try listObjects(Durable_V1_NodeListObjectsRequest(serializedBytes: call.payload))
                    .serializedBytes()
            case Methods.nodeListStorage:
                return try listStorage(Durable_V1_NodeListStorageRequest(serializedBytes: call.payload))
                    .serializedBytes()
            case Methods.nodeGetStorage:
                return try getStorage(Durable_V1_NodeGetStorageRequest(serializedBytes: call.payload))
                    .serializedBytes()
            case Methods.nodeSlotUsage:
                // A scan of every namespace: on a thread of its own, not Swift's small cooperative pool.
                let usage = try await Self.onOwnThread { [runtime] in try runtime.slotUsage() }
                return try Durable_V1_NodeSlotUsageResponse.with { response in
                    response.slots = usage.sorted { $0.key < $1.key }.map { slot, usage in
                        .with {
                            $0.slot = UInt32(slot)
                            $0.objects = UInt64(usage.objects)
                            $0.bytes = UInt64(usage.bytes)
                        }
                    }
                }.serializedBytes()
            default:
                return try await checkpoint(Durable_V1_CheckpointRequest(serializedBytes: call.payload))
                    .serializedBytes()
            }
        } catch {
            throw RPCError(serving: error)
        }
    }

    private func listObjects(_ request: Durable_V1_NodeListObjectsRequest) throws
        -> Durable_V1_NodeListObjectsResponse
    {
        _ = try served(request.namespaceID)
        let limit = request.limit == 0 ? Self.maximumListedObjects : min(Int(request.limit), Self.maximumListedObjects)
        let ids = try runtime.objectIDs(
            inNamespace: request.namespaceID, after: request.afterID.isEmpty ? nil : Array(request.afterID),
            limit: limit + 1)
        return try .with { response in
            response.truncated = ids.count > limit
            response.objects = try ids.prefix(limit).map { id in
                let name = try ObjectNames.name(namespaceID: request.namespaceID, id: id.bytes, database: database)
                return .with {
                    $0.id = Data(id.bytes)
                    $0.name = name ?? ""
                    $0.nodeID = nodeID
                }
            }
        }
    }

    private func listStorage(_ request: Durable_V1_NodeListStorageRequest) throws -> Durable_V1_ListStorageResponse {
        let (definition, family) = try served(request.namespaceID)
        let id = try definition.key.id(bytes: Array(request.objectID), name: nil)
        let limit = request.limit == 0 ? Int.max : Int(request.limit)
        let options = ObjectKeySpace.scanOptions(
            objectID: id.bytes, start: request.startAfter.isEmpty ? nil : Array(request.startAfter) + [0],
            prefix: request.prefix.isEmpty ? nil : Array(request.prefix.utf8))
        var response = Durable_V1_ListStorageResponse()
        response.namespaceID = request.namespaceID
        response.objectID = Data(id.bytes)
        response.nodeID = nodeID
        var bytes = 0
        try database.forEach(in: family, options) { key, value in
            let userKey = ObjectKeySpace.userKeyBytes(ofStorageKey: key)
            guard response.entries.count < limit, bytes + userKey.count + value.count <= Self.maximumListingBytes
            else {
                response.more = true
                return false
            }
            bytes += userKey.count + value.count
            response.entries.append(
                .with {
                    $0.key = Data(userKey)
                    $0.value = Data(value)
                })
            return true
        }
        return response
    }

    private func getStorage(_ request: Durable_V1_NodeGetStorageRequest) throws -> Durable_V1_GetStorageResponse {
        let (definition, family) = try served(request.namespaceID)
        let id = try definition.key.id(bytes: Array(request.objectID), name: nil)
        guard
            let value = try database.get(
                ObjectKeySpace.storageKey(objectID: id.bytes, userKey: request.key), in: family)
        else {
            throw RPCError(.notFound, "No value is stored under key '\(request.key)' in object \(id.hexString).")
        }
        return .with {
            $0.namespaceID = request.namespaceID
            $0.objectID = Data(id.bytes)
            $0.nodeID = nodeID
            $0.value = Data(value)
        }
    }

    private func checkpoint(_ request: Durable_V1_CheckpointRequest) async throws -> Durable_V1_CheckpointSummary {
        guard request.directory.hasPrefix("/") else {
            throw RPCError(
                .invalidArgument, "A checkpoint directory must be an absolute path, not '\(request.directory)'.")
        }
        logger.info("writing a checkpoint", metadata: ["directory": "\(request.directory)"])
        let report: CheckpointReport
        do {
            report = try await database.writeCheckpoint(into: request.directory)
        } catch let error as StorageError {
            throw RPCError(.failedPrecondition, "Node \(nodeID) cannot write its checkpoint: \(error.message)")
        }
        logger.info(
            "checkpoint written",
            metadata: ["directory": "\(report.path)", "files": "\(report.files)", "bytes": "\(report.bytes)"])
        return .with {
            $0.path = report.path
            $0.files = UInt32(clamping: report.files)
            $0.bytes = report.bytes
        }
    }

    /// The definition and column family of a namespace this node serves.
    private func served(_ namespaceID: String) throws -> (NamespaceDefinition, ColumnFamily) {
        guard let definition = runtime.namespaceDefinition(namespaceID) else {
            throw RPCError(.notFound, "No Durable Object namespace '\(namespaceID)' is served by node \(nodeID).")
        }
        return (definition, try database.columnFamily(named: ObjectRuntime.namespaceFamilyPrefix + namespaceID))
    }
}
