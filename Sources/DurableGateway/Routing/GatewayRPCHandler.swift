import DurableClient
import DurableObjects
import DurableProtocol
import DurableWire
import Foundation
import Logging

/// Answers the gateway's RPC methods, each by the part whose job it is: invocations by the ``ObjectRouter``,
/// bindings by ``WorkerBindings``, node registration by the ``NodeRegistrar``, publishing by the
/// ``GatewayPublisher``, socket frames by the ``SocketRegistry``, operator methods by the ``AdminService``.
struct GatewayRPCHandler: RPCHandler {
    let router: ObjectRouter
    let bindings: WorkerBindings
    let registrar: NodeRegistrar
    let publisher: GatewayPublisher
    let sockets: SocketRegistry
    let admin: AdminService
    let registry: any RegistryStore
    let placement: any PlacementStore
    let links: NodeLinks
    let logger: Logger

    func handle(_ call: IncomingCall) async throws -> [UInt8] {
        switch call.method {
        case Methods.invoke:
            return try await router.forward(
                call.payload, deadline: call.deadline, callerMetadata: call.metadata,
                fromClusterPeer: call.callerRole == .cluster)
        case Methods.resolveBinding:
            return try bindings.resolve(Durable_V1_ResolveBindingRequest(serializedBytes: call.payload))
                .serializedBytes()
        case Methods.health:
            return try Durable_V1_HealthResponse.with {
                $0.nodeID = "gateway"
                $0.serving = true
            }.serializedBytes()
        case Methods.webSocketSend:
            let request = try Durable_V1_WebSocketSendRequest(serializedBytes: call.payload)
            try await sockets.deliver(request.frames.compactMap(WebSocketFrame.init(wire:)))
            return try Durable_V1_WebSocketSendResponse().serializedBytes()
        case Methods.tail:
            return try await GatewayTail.serve(
                call, placement: placement, links: links, bindings: bindings, logger: logger)
        case Methods.registerNode:
            let request = try Durable_V1_RegisterNodeRequest(serializedBytes: call.payload)
            try await registrar.register(
                nodeID: request.nodeID, address: request.address, databaseIdentity: request.databaseIdentity,
                replacingLostNode: request.replaceLostNode, joinedRegistry: request.registryIdentity)
            return try Durable_V1_RegisterNodeResponse.with { $0.registryIdentity = registry.identity }
                .serializedBytes()
        case Methods.publish:
            return try await publish(Durable_V1_PublishRequest(serializedBytes: call.payload)).serializedBytes()
        case let method where method.hasPrefix(Methods.adminPrefix):
            return try await admin.handle(call)
        default:
            throw RPCError(.unimplemented, "Unknown method '\(call.method)'.")
        }
    }

    func start(_ call: IncomingCall, reply: @escaping @Sendable (Result<[UInt8], RPCError>) -> Void)
        -> (@Sendable () -> Void)?
    {
        router.start(call, reply: reply)
    }

    /// `Gateway/Publish`: a configuration that does not parse is `INVALID_ARGUMENT`, a refused migration
    /// `FAILED_PRECONDITION`, each with its message.
    private func publish(_ request: Durable_V1_PublishRequest) async throws -> Durable_V1_PublishResponse {
        var migrations: [Migration]?
        var expectedTag: String?
        if request.hasCommandLineMigration {
            let flags = request.commandLineMigration
            migrations = [
                Migration(
                    tag: flags.newTag, newClasses: flags.newClasses,
                    renamedClasses: flags.renamedClasses.map { Migration.Rename(from: $0.from, to: $0.to) },
                    deletedClasses: flags.deletedClasses,
                    transferredClasses: flags.transferredClasses.map {
                        Migration.Transfer(from: $0.from, fromScript: $0.fromScript, to: $0.to)
                    })
            ]
            expectedTag = flags.oldTag.isEmpty ? nil : flags.oldTag
        }
        do {
            let app = try ConfigurationParser.parse(request.configuration)
            let changes = try await publisher.publish(
                app, environment: request.environment.isEmpty ? nil : request.environment,
                migrations: migrations, expectedTag: expectedTag)
            return .with { $0.changes = changes.map { "\($0)" } }
        } catch let error as MigrationPlanner.PublishError {
            throw RPCError(.failedPrecondition, error.message)
        } catch let error as ConfigurationError {
            throw RPCError(.invalidArgument, error.description)
        }
    }
}
