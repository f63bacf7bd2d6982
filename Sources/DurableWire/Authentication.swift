import Crypto
import Foundation

/// What an authenticated connection may do, decided by which key it proved it knows.
public enum RPCRole: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    /// A member of the cluster (gateway or node): proved the cluster secret.
    case cluster
    /// An operator: proved an admin token (publish, inspection).
    case admin
    /// An application client: proved an API token (calls to objects).
    case client

    /// The role's name, as `AuthenticateResponse` carries it.
    public var description: String { rawValue }
}

/// A shared secret that a server accepts: the cluster secret, an admin token or an API token.
///
/// Its text is never logged: `description` shows only its role and length.
public struct RPCKey: Sendable, Hashable, CustomStringConvertible {
    /// The secret's bytes (its UTF-8 text).
    public let secret: [UInt8]
    /// The role a connection gets by proving it.
    public let role: RPCRole

    /// The fewest characters a key may have.
    public static let minimumLength = 16

    /// Creates a key from its text.
    ///
    /// - Throws: ``RPCKeyError`` when the text, trimmed of surrounding whitespace, is shorter than
    ///   ``minimumLength`` characters.
    public init(_ text: String, role: RPCRole) throws {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.count >= Self.minimumLength else {
            throw RPCKeyError(
                "The \(role.keyName) is \(trimmed.count) characters long; it must have at least \(Self.minimumLength).")
        }
        secret = Array(trimmed.utf8)
        self.role = role
    }

    /// Hides the secret.
    public var description: String { "\(role.keyName) (\(secret.count) bytes)" }

    /// The proof that answers `nonce`: HMAC-SHA256 of `"durable.v1.auth:" + nonce` under the secret.
    public func proof(for nonce: [UInt8]) -> [UInt8] {
        Self.proof(secret: secret, nonce: nonce)
    }

    static func proof(secret: [UInt8], nonce: [UInt8]) -> [UInt8] {
        var hmac = HMAC<SHA256>(key: SymmetricKey(data: secret))
        hmac.update(data: Array("durable.v1.auth:".utf8))
        hmac.update(data: nonce)
        return Array(hmac.finalize())
    }

    /// Makes a random key of 32 bytes written as 64 hexadecimal characters (what `durable dev` generates).
    public static func randomText() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &generator)) }.joined()
    }
}

/// A key that cannot be used.
public struct RPCKeyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// What is wrong with it.
    public var message: String
    /// Creates an error.
    public init(_ message: String) { self.message = message }
    /// The message.
    public var description: String { message }
}

extension RPCRole {
    /// How the role's key is called in messages.
    public var keyName: String {
        switch self {
        case .cluster: "cluster secret"
        case .admin: "admin token"
        case .client: "API token"
        }
    }
}

/// Who may call a server: the keys it accepts, and which roles may call each method.
///
/// A server with access control answers every call other than the two `durable.v1.Auth` methods
/// `UNAUTHENTICATED` until the connection authenticates, and `PERMISSION_DENIED` when its role may not call the
/// method.
public struct RPCAccessControl: Sendable {
    /// The keys accepted.
    public var keys: [RPCKey]
    /// The roles that may call a method.
    public var roles: @Sendable (_ method: String) -> Set<RPCRole>
    /// How long a connection may stay unauthenticated before it is closed.
    public var authenticationTimeout: Duration

    /// Creates access control.
    ///
    /// - Parameters:
    ///   - keys: the keys accepted; the first one that matches a proof decides the connection's role.
    ///   - authenticationTimeout: how long a new connection may take to authenticate.
    ///   - roles: the roles that may call each method.
    public init(
        keys: [RPCKey], authenticationTimeout: Duration = .seconds(10),
        roles: @escaping @Sendable (_ method: String) -> Set<RPCRole>
    ) {
        self.keys = keys
        self.authenticationTimeout = authenticationTimeout
        self.roles = roles
    }

    /// The role of the key whose proof for `nonce` is `proof`, comparing in constant time; `nil` when none.
    func role(proving proof: [UInt8], for nonce: [UInt8]) -> RPCRole? {
        var matched: RPCRole?
        for key in keys where constantTimeEqual(key.proof(for: nonce), proof) && matched == nil {
            matched = key.role
        }
        return matched
    }
}

/// Whether `a` and `b` hold the same bytes, in time that depends only on their lengths.
func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}

/// The methods of connection authentication (auth.proto).
public enum AuthMethods {
    /// Asks for a nonce to prove a key against.
    public static let challenge = "durable.v1.Auth/Challenge"
    /// Proves a key: the HMAC of the latest nonce.
    public static let authenticate = "durable.v1.Auth/Authenticate"
}

extension RPCError {
    /// The connection has not authenticated.
    static func unauthenticated(_ method: String) -> RPCError {
        RPCError(
            .unauthenticated,
            "\(method) needs an authenticated connection: this server accepts only clients that prove a key "
                + "(call \(AuthMethods.challenge), then \(AuthMethods.authenticate)).")
    }
}

/// The keys of a cluster: the secret its gateway and nodes share, and the tokens of operators and applications.
public struct ClusterKeys: Sendable {
    /// What gateway and nodes prove to each other.
    public var clusterSecret: RPCKey
    /// What operators prove to publish and inspect.
    public var adminTokens: [RPCKey]
    /// What application clients prove to call objects through the gateway.
    public var apiTokens: [RPCKey]

    /// Creates the keys.
    public init(clusterSecret: RPCKey, adminTokens: [RPCKey] = [], apiTokens: [RPCKey] = []) {
        self.clusterSecret = clusterSecret
        self.adminTokens = adminTokens
        self.apiTokens = apiTokens
    }

    /// Every key, the cluster secret first.
    public var all: [RPCKey] { [clusterSecret] + adminTokens + apiTokens }
}
