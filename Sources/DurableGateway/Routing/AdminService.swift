import DurableClient
import DurableObjects
import DurableStorage
import DurableWire
import Foundation
import Logging

/// The gateway's operator methods (`durable.v1.Admin/…`, admin token only): read-only listings of a binding's
/// objects, of one object's storage and of the slots, answered by the nodes from their databases, backups, and the
/// cluster's status.
struct AdminService: Sendable {
    let placement: any PlacementStore
    let links: NodeLinks
    let bindings: WorkerBindings
    /// The gateway's own database, for the gateway's part of a backup.
    let gatewayDatabase: Database
    /// Answers `Admin/ClusterStatus`.
    let status: ClusterStatusReport
    /// Runs `Admin/MoveSlot`.
    let mover: SlotMover
    /// Runs `Admin/Rebalance`.
    let rebalancer: SlotRebalancer
    let logger: Logger

    /// How long a node may take for one inspection call.
    static let inspectionTimeout: Duration = .seconds(60)
    /// How long a node may take to write its checkpoint.
    static let checkpointTimeout: Duration = .seconds(600)

    func handle(_ call: IncomingCall) async throws -> [UInt8] {
        switch call.method {
        case Methods.adminListObjects:
            return try await listObjects(Durable_V1_ListObjectsRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.adminListStorage:
            return try await listStorage(Durable_V1_ListStorageRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.adminGetStorage:
            return try await getStorage(Durable_V1_GetStorageRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.adminBackup:
            return try await backup(Durable_V1_BackupRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.adminClusterStatus:
            return try await status.report().serializedBytes()
        case Methods.adminMoveSlot:
            return try await mover.move(Durable_V1_MoveSlotRequest(serializedBytes: call.payload)).serializedBytes()
        case Methods.adminRebalance:
            let stream = call.stream
            return try await rebalancer.rebalance(Durable_V1_RebalanceRequest(serializedBytes: call.payload)) {
                progress in
                // A client that went away does not stop the moves; it misses their reports.
                try? await stream.send(try progress.serializedBytes())
            }.serializedBytes()
        case Methods.adminListSlots:
            return try await listSlots(Durable_V1_ListSlotsRequest(serializedBytes: call.payload)).serializedBytes()
        default:
            throw RPCError(.unimplemented, "Unknown method '\(call.method)'.")
        }
    }

    // MARK: Inspection

    private func listObjects(_ request: Durable_V1_ListObjectsRequest) async throws -> Durable_V1_ListObjectsResponse {
        let namespace = try bindings.namespace(binding: request.binding, environment: request.environment)
        var response = Durable_V1_ListObjectsResponse()
        response.namespaceID = namespace.id
        for nodeID in placement.nodes.keys.sorted() {
            do {
                let node = try links.node(nodeID)
                let answer: Durable_V1_NodeListObjectsResponse = try await node.call(
                    Methods.nodeListObjects,
                    Durable_V1_NodeListObjectsRequest.with {
                        $0.namespaceID = namespace.id
                        $0.limit = request.limit
                    }, timeout: Self.inspectionTimeout)
                response.objects += answer.objects
                response.truncated = response.truncated || answer.truncated
            } catch {
                let message = (error as? DurableObjectError)?.message ?? (error as? RPCError)?.message ?? "\(error)"
                logger.notice(
                    "a node could not list its objects", metadata: ["node": "\(nodeID)", "error": "\(message)"])
                response.failures.append(
                    .with {
                        $0.nodeID = nodeID
                        $0.message = message
                    })
            }
        }
        return response
    }

    /// Every assigned slot with its owner and epoch, and the objects and bytes its owner holds of it.
    private func listSlots(_ request: Durable_V1_ListSlotsRequest) async throws -> Durable_V1_ListSlotsResponse {
        let nodes = placement.nodes.keys.sorted().filter { request.nodeID.isEmpty || $0 == request.nodeID }
        guard !nodes.isEmpty || request.nodeID.isEmpty else {
            throw RPCError(.notFound, "No node '\(request.nodeID)' is registered.")
        }
        var response = Durable_V1_ListSlotsResponse()
        for nodeID in nodes {
            let slots = placement.slots(of: nodeID)
            var usage: [UInt32: Durable_V1_SlotUsage] = [:]
            if !slots.isEmpty {
                do {
                    let answer: Durable_V1_NodeSlotUsageResponse = try await links.node(nodeID).call(
                        Methods.nodeSlotUsage, Durable_V1_NodeSlotUsageRequest(), timeout: Self.inspectionTimeout)
                    for entry in answer.slots { usage[entry.slot] = entry }
                } catch {
                    let message = (error as? DurableObjectError)?.message ?? (error as? RPCError)?.message ?? "\(error)"
                    response.failures.append(
                        .with {
                            $0.nodeID = nodeID
                            $0.message = message
                        })
                }
            }
            var totals = Durable_V1_NodeSlotTotals()
            totals.nodeID = nodeID
            totals.slots = UInt32(slots.count)
            for (slot, epoch) in slots {
                let held = usage[UInt32(slot)]
                response.slots.append(
                    .with {
                        $0.slot = UInt32(slot)
                        $0.nodeID = nodeID
                        $0.epoch = epoch
                        $0.objects = held?.objects ?? 0
                        $0.bytes = held?.bytes ?? 0
                        $0.movingTo = placement.assignment(of: slot)?.movingTo ?? ""
                    })
                totals.objects += held?.objects ?? 0
                totals.bytes += held?.bytes ?? 0
            }
            response.nodes.append(totals)
        }
        response.slots.sort { $0.slot < $1.slot }
        return response
    }

    private func listStorage(_ request: Durable_V1_ListStorageRequest) async throws -> Durable_V1_ListStorageResponse {
        let (namespace, id, owner) = try target(request.address)
        guard let owner else {
            return .with {
                $0.namespaceID = namespace.id
                $0.objectID = Data(id.bytes)
            }
        }
        let node = try links.node(owner)
        let message = Durable_V1_NodeListStorageRequest.with {
            $0.namespaceID = namespace.id
            $0.objectID = Data(id.bytes)
            $0.prefix = request.prefix
            $0.startAfter = request.startAfter
            $0.limit = request.limit
        }
        return try await node.call(Methods.nodeListStorage, message, timeout: Self.inspectionTimeout)

    }

    private func getStorage(_ request: Durable_V1_GetStorageRequest) async throws -> Durable_V1_GetStorageResponse {
        let (namespace, id, owner) = try target(request.address)
        guard let owner else {
            throw RPCError(
                .notFound,
                "No value is stored under key '\(request.key)' in object \(id.hexString): the object has no stored data."
            )
        }
        let node = try links.node(owner)
        let message = Durable_V1_NodeGetStorageRequest.with {
            $0.namespaceID = namespace.id
            $0.objectID = Data(id.bytes)
            $0.key = request.key
        }
        return try await node.call(Methods.nodeGetStorage, message, timeout: Self.inspectionTimeout)

    }

    /// The namespace, id and owning node (`nil` when its slot was never assigned, so it has no data) of an object.
    private func target(_ address: Durable_V1_ObjectAddress) throws -> (
        RegistryState.Namespace, DurableObjectId, String?
    ) {
        let namespace = try bindings.namespace(binding: address.binding, environment: address.environment)
        let id = try objectID(address, in: namespace)
        return (namespace, id, placement.assignment(of: PlacementEpochs.slot(of: id))?.nodeID)
    }

    /// The id an address names: 64 hex digits that are an id of the namespace, else (or with `as_name`) the id of
    /// the name.
    private func objectID(_ address: Durable_V1_ObjectAddress, in namespace: RegistryState.Namespace) throws
        -> DurableObjectId
    {
        let text = address.object
        guard !text.isEmpty else { throw RPCError(.invalidArgument, "Name an object: an id or a name.") }
        let key = NamespaceKey(secret: namespace.secret)
        let isHex = text.utf8.count == 64 && text.allSatisfy(\.isHexDigit)
        guard isHex, !address.asName else { return key.id(forName: text) }
        do {
            return try key.id(fromString: text)
        } catch {
            throw RPCError(
                .invalidArgument,
                "'\(text)' is not an id of binding \(address.binding) (namespace \(namespace.id)): \(error.message) "
                    + "To use it as a name, pass --name.")
        }
    }

    // MARK: Backup

    private func backup(_ request: Durable_V1_BackupRequest) async throws -> Durable_V1_BackupResponse {
        let directory = request.directory
        guard directory.hasPrefix("/") else {
            throw RPCError(.invalidArgument, "A backup directory must be an absolute path, not '\(directory)'.")
        }
        switch request.step {
        case .plan:
            let nodes = placement.nodes.keys.sorted()
            for nodeID in nodes where nodeID.isEmpty || nodeID.contains("/") || nodeID == "." || nodeID == ".." {
                throw RPCError(.failedPrecondition, "Node id '\(nodeID)' cannot name a folder of the backup.")
            }
            let targets = [Self.gatewayFolder(directory)] + nodes.map { Self.nodeFolder(directory, $0) }
            if let existing = targets.first(where: { FileManager.default.fileExists(atPath: $0) }) {
                throw RPCError(
                    .failedPrecondition,
                    "\(existing) exists already: back up into a directory that holds no gateway/ or nodes/ folders.")
            }
            logger.info("backup planned", metadata: ["directory": "\(directory)", "nodes": "\(nodes)"])
            return .with { $0.nodeIds = nodes }
        case .node:
            guard placement.nodes[request.nodeID] != nil else {
                throw RPCError(.notFound, "Node '\(request.nodeID)' is not registered.")
            }
            let node = try links.node(request.nodeID)
            let message = Durable_V1_CheckpointRequest.with {
                $0.directory = Self.nodeFolder(directory, request.nodeID)
            }
            let summary: Durable_V1_CheckpointSummary = try await node.call(
                Methods.nodeCheckpoint, message, timeout: Self.checkpointTimeout)

            logger.info(
                "node checkpoint written",
                metadata: ["node": "\(request.nodeID)", "directory": "\(summary.path)", "bytes": "\(summary.bytes)"])
            return .with { $0.checkpoint = summary }
        case .gateway:
            let report: CheckpointReport
            do {
                report = try await gatewayDatabase.writeCheckpoint(into: Self.gatewayFolder(directory))
            } catch let error as StorageError {
                throw RPCError(.failedPrecondition, "The gateway cannot write its checkpoint: \(error.message)")
            }
            logger.info(
                "gateway checkpoint written", metadata: ["directory": "\(report.path)", "bytes": "\(report.bytes)"])
            return .with {
                $0.checkpoint = .with {
                    $0.path = report.path
                    $0.files = UInt32(clamping: report.files)
                    $0.bytes = report.bytes
                }
            }
        case .UNRECOGNIZED(let value):
            throw RPCError(.invalidArgument, "Unknown backup step \(value).")
        }
    }

    static func gatewayFolder(_ directory: String) -> String {
        (directory as NSString).appendingPathComponent("gateway")
    }

    static func nodeFolder(_ directory: String, _ nodeID: String) -> String {
        ((directory as NSString).appendingPathComponent("nodes") as NSString).appendingPathComponent(nodeID)
    }
}
