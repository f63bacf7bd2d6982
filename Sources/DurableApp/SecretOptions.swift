import ArgumentParser
import DurableWire
import Foundation
import Logging

/// Where the commands find the cluster's keys: a file named by a flag, else an environment variable. Keys are
/// never taken as flag values (other users of the machine can read command lines) and never logged.
struct SecretOptions: ParsableArguments {
    @Option(
        name: .customLong("cluster-secret-file"),
        help: "A file holding the secret the gateway and nodes share (default: $DURABLE_CLUSTER_SECRET).")
    var clusterSecretFile: String?

    @Option(
        name: .customLong("admin-token-file"),
        help: "A file of admin tokens, one per line, for publishing and inspection (default: $DURABLE_ADMIN_TOKEN).")
    var adminTokenFile: String?

    @Option(
        name: .customLong("api-token-file"),
        help: "A file of API tokens, one per line, for RPC clients of the gateway (default: $DURABLE_API_TOKEN).")
    var apiTokenFile: String?

    @Flag(help: "Serve without authentication: anyone who reaches the RPC port may call every method.")
    var insecure = false

    /// The cluster secret, from `--cluster-secret-file` or `DURABLE_CLUSTER_SECRET`; `nil` when neither is set.
    func clusterSecret() throws -> RPCKey? {
        try SecretSource.keys(file: clusterSecretFile, variable: "DURABLE_CLUSTER_SECRET", role: .cluster).first
    }

    /// The admin tokens, from `--admin-token-file` or `DURABLE_ADMIN_TOKEN`.
    func adminTokens() throws -> [RPCKey] {
        try SecretSource.keys(file: adminTokenFile, variable: "DURABLE_ADMIN_TOKEN", role: .admin)
    }

    /// The API tokens, from `--api-token-file` or `DURABLE_API_TOKEN`.
    func apiTokens() throws -> [RPCKey] {
        try SecretSource.keys(file: apiTokenFile, variable: "DURABLE_API_TOKEN", role: .client)
    }

    /// The node's cluster secret, required unless `--insecure`.
    func nodeSecret(logger: Logger) throws -> RPCKey? {
        let secret = try clusterSecret()
        if insecure {
            guard secret == nil else {
                throw CommandError("--insecure cannot be combined with a cluster secret; choose one")
            }
            logger.warning("serving without authentication (--insecure): anyone who reaches the port may call")
            return nil
        }
        guard let secret else {
            throw CommandError(
                "durable node needs the cluster secret: set DURABLE_CLUSTER_SECRET or pass --cluster-secret-file "
                    + "(or --insecure to serve without authentication)")
        }
        return secret
    }

    /// The gateway's keys: the cluster secret and at least one admin token are required unless `--insecure`.
    func gatewayKeys(logger: Logger) throws -> ClusterKeys? {
        let secret = try clusterSecret()
        let admins = try adminTokens()
        let clients = try apiTokens()
        if insecure {
            guard secret == nil, admins.isEmpty, clients.isEmpty else {
                throw CommandError("--insecure cannot be combined with a cluster secret or tokens; choose one")
            }
            logger.warning("serving without authentication (--insecure): anyone who reaches the port may call")
            return nil
        }
        guard let secret else {
            throw CommandError(
                "durable gateway needs the cluster secret: set DURABLE_CLUSTER_SECRET or pass --cluster-secret-file "
                    + "(or --insecure to serve without authentication)")
        }
        guard !admins.isEmpty else {
            throw CommandError(
                "durable gateway needs an admin token: set DURABLE_ADMIN_TOKEN or pass --admin-token-file "
                    + "(or --insecure to serve without authentication)")
        }
        if clients.isEmpty {
            logger.info("no API tokens: RPC clients must present the admin token")
        }
        return ClusterKeys(clusterSecret: secret, adminTokens: admins, apiTokens: clients)
    }
}

/// Reads keys from a file or an environment variable.
enum SecretSource {
    /// The keys in `file` (one per line; blank lines and lines starting with `#` are skipped), else the one in
    /// the environment variable; empty when neither is set.
    ///
    /// - Throws: ``CommandError`` naming the file or variable when it cannot be read, holds no key, or holds one
    ///   that is too short.
    static func keys(
        file: String?, variable: String, role: RPCRole,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> [RPCKey] {
        let texts: [String]
        let origin: String
        if let file {
            origin = "the \(role.keyName) file \(file)"
            let contents: String
            do {
                contents = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw CommandError("cannot read \(origin): \(error.localizedDescription)")
            }
            texts = contents.split(whereSeparator: \.isNewline).map {
                $0.trimmingCharacters(in: .whitespaces)
            }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
            guard !texts.isEmpty else { throw CommandError("\(origin) holds no \(role.keyName)") }
        } else if let value = environment[variable] {
            origin = "$\(variable)"
            texts = [value]
        } else {
            return []
        }
        do {
            return try texts.map { try RPCKey($0, role: role) }
        } catch let error as RPCKeyError {
            throw CommandError("\(origin): \(error.message)")
        }
    }

    /// The key in `file` under `folder`, made (random, readable by the owner only) when missing: what
    /// `durable dev` uses so that its ports are never open to everyone.
    static func localKey(_ name: String, in folder: URL, role: RPCRole) throws -> RPCKey {
        let manager = FileManager.default
        try manager.createDirectory(
            at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let file = folder.appendingPathComponent(name)
        if !manager.fileExists(atPath: file.path) {
            guard
                manager.createFile(
                    atPath: file.path, contents: Data((RPCKey.randomText() + "\n").utf8),
                    attributes: [.posixPermissions: 0o600])
            else { throw CommandError("cannot write \(file.path)") }
        }
        guard let key = try keys(file: file.path, variable: "", role: role).first else {
            throw CommandError("\(file.path) holds no \(role.keyName)")
        }
        return key
    }
}
