import ArgumentParser
import DurableClient
import DurableObjects
import DurableWire
import Foundation

/// How the operator commands (`objects`, `storage`, `backup`, `tail`) reach the gateway: its RPC address and the admin
/// token, taken like `durable publish` takes them.
struct AdminOptions: ParsableArguments {
    @Option(
        help:
            "The gateway's RPC address (host:port), or several gateways of one cluster, comma-separated: the first that answers is used."
    )
    var gateway: String = "127.0.0.1:7070"

    @Option(
        name: .customLong("admin-token-file"),
        help: ArgumentHelp(
            "A file holding the gateway's admin token (default: $DURABLE_ADMIN_TOKEN, else "
                + ".durable/secrets/admin-token when `durable dev` made one in this folder)."))
    var adminTokenFile: String?

    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp(
            "Connect to the gateway with TLS and verify its certificate against this CA (PEM) (default: "
                + "$DURABLE_TLS_CA, else .durable/tls/ca.pem when `durable dev --tls` made one in this folder)."))
    var tlsCertificateAuthority: String?

    @Flag(name: .customLong("tls"), help: "Connect to the gateway with TLS, trusting the system's CAs.")
    var useTLS = false

    func validate() throws {
        do {
            _ = try DurableClient.Endpoint.list(gateway)
        } catch let error as DurableObjectError {
            throw ValidationError("--gateway must be host:port[,host:port…]: \(error.message)")
        }
    }

    /// The gateways named by `--gateway`, in order.
    var gateways: [DurableClient.Endpoint] { (try? DurableClient.Endpoint.list(gateway)) ?? [] }

    /// Connects to the first gateway that answers and proves the admin token (when one is set; without one the
    /// gateway answers `UNAUTHENTICATED`).
    ///
    /// - Throws: ``CommandError`` with the status when no gateway can be reached, or one refuses the token.
    func connect() async throws -> AdminConnection {
        let token = try adminToken()
        var unreachable: [String] = []
        for endpoint in gateways {
            do {
                return AdminConnection(
                    connection: try await RPCConnection.connect(
                        host: endpoint.host, port: endpoint.port, credentials: token, tls: try clientTLS()))
            } catch let error as RPCError where error.code == .unavailable {
                unreachable.append("\(error)")
            } catch let error as RPCError {
                throw CommandError("\(error)")
            }
        }
        throw CommandError(unreachable.joined(separator: "; "))
    }
}

extension AdminOptions {
    /// The admin token: `--admin-token-file`, else `$DURABLE_ADMIN_TOKEN`, else the one `durable dev` keeps in
    /// `.durable/secrets/admin-token` under the working directory; `nil` when there is none.
    func adminToken() throws -> RPCKey? {
        if let token = try SecretSource.keys(file: adminTokenFile, variable: "DURABLE_ADMIN_TOKEN", role: .admin).first
        {
            return token
        }
        let devToken = ".durable/secrets/admin-token"
        guard FileManager.default.fileExists(atPath: devToken) else { return nil }
        return try SecretSource.keys(file: devToken, variable: "DURABLE_ADMIN_TOKEN", role: .admin).first
    }

    /// A client of the gateway that proves the admin token (for streaming calls).
    func client() throws -> DurableClient {
        DurableClient(endpoints: gateways, connections: 1, credentials: try adminToken(), tls: try clientTLS())
    }

    /// How to reach the gateway: TLS trusting `--tls-ca`, `$DURABLE_TLS_CA` or the CA `durable dev --tls` made here;
    /// TLS trusting the system's CAs with `--tls`; else plaintext.
    func clientTLS() throws -> RPCClientTLS? {
        let devCA = ".durable/tls/ca.pem"
        let authority =
            tlsCertificateAuthority ?? ProcessInfo.processInfo.environment["DURABLE_TLS_CA"]
            ?? (FileManager.default.fileExists(atPath: devCA) ? devCA : nil)
        guard authority != nil || useTLS else { return nil }
        do {
            return try RPCClientTLS(certificateAuthority: authority)
        } catch let error as TLSConfigurationError {
            throw CommandError(error.message)
        }
    }
}

/// One RPC connection to the gateway whose failures become command errors reading `CODE: message` (for example
/// `PERMISSION_DENIED: durable.v1.Admin/ListObjects needs the admin token; …`).
struct AdminConnection: Sendable {
    let connection: RPCConnection

    /// Calls `method` with a serialized request; returns the serialized answer.
    func call(_ method: String, _ payload: [UInt8], timeout: Duration = .seconds(120)) async throws -> [UInt8] {
        do {
            return try await connection.call(method, payload: payload, timeout: timeout)
        } catch let error as RPCError {
            throw CommandError("\(error)")
        }
    }

    /// Calls a streaming `method`: `onMessage` gets each streamed message; returns the serialized answer.
    func callStreaming(
        _ method: String, _ payload: [UInt8], timeout: Duration? = nil,
        onMessage: @escaping @Sendable ([UInt8]) -> Void
    ) async throws -> [UInt8] {
        do {
            return try await connection.callStreaming(method, payload: payload, timeout: timeout, onMessage: onMessage)
        } catch let error as RPCError {
            throw CommandError("\(error)")
        }
    }

    /// Closes the connection.
    func close() async {
        await connection.close()
    }
}

/// How the operator commands print what they read.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    /// Aligned columns for people.
    case table
    /// One JSON document for programs.
    case json
}

/// Prints `value` (dictionaries, arrays, strings, numbers) as indented JSON with sorted keys.
func printJSON(_ value: Any) throws {
    let data = try JSONSerialization.data(
        withJSONObject: value, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
    print(String(decoding: data, as: UTF8.self))
}

/// Runs `body` with a connection to the gateway, closing it afterwards whatever happens.
func withAdminConnection<T>(_ options: AdminOptions, _ body: (AdminConnection) async throws -> T) async throws -> T {
    let connection = try await options.connect()
    do {
        let result = try await body(connection)
        await connection.close()
        return result
    } catch {
        await connection.close()
        throw error
    }
}
