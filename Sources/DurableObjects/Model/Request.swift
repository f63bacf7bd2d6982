import Foundation
import HTTPTypes

/// An HTTP-shaped request delivered to an object's `fetch`, built on swift-http-types.
///
/// The body is held in memory as bytes; ``text()``, ``json(_:)`` and ``bytes`` read it.
public struct Request: Sendable {
    /// Method, target, headers, as swift-http-types models them.
    public var head: HTTPRequest
    /// The body's bytes (empty when there is none).
    public var body: [UInt8]

    /// Creates a request from its parts.
    public init(head: HTTPRequest, body: [UInt8] = []) {
        self.head = head
        self.body = body
    }

    /// Creates a request for `url` (an absolute URL such as `http://do/increment`, or a path).
    ///
    /// The host of `url` does not matter: `stub.fetch` always reaches the object.
    public init(url: String, method: HTTPRequest.Method = .get, headers: HTTPFields = [:], body: Body = .empty) {
        let parsed = URLComponents(string: url)
        var path = parsed?.percentEncodedPath ?? url
        if path.isEmpty { path = "/" }
        if let query = parsed?.percentEncodedQuery { path += "?" + query }
        var fields = headers
        if let contentType = body.contentType, fields[.contentType] == nil { fields[.contentType] = contentType }
        head = HTTPRequest(
            method: method, scheme: parsed?.scheme ?? "http", authority: parsed?.host ?? "durable-object", path: path,
            headerFields: fields)
        self.body = body.bytes
    }

    /// The method.
    public var method: HTTPRequest.Method { head.method }
    /// The headers.
    public var headers: HTTPFields {
        get { head.headerFields }
        set { head.headerFields = newValue }
    }
    /// The path without the query, e.g. `/increment`.
    public var path: String {
        let target = head.path ?? "/"
        return target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
    }
    /// The full URL, e.g. `http://host/path?query`.
    public var url: String { "\(head.scheme ?? "http")://\(head.authority ?? "")\(head.path ?? "/")" }
    /// The query items of the URL.
    public var queryItems: [URLQueryItem] { URLComponents(string: url)?.queryItems ?? [] }

    /// The body's bytes.
    public var bytes: [UInt8] { body }
    /// The body decoded as UTF-8.
    public func text() -> String { String(decoding: body, as: UTF8.self) }
    /// The body decoded as JSON.
    public func json<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body))
    }
}

/// A request or response body with its content type.
public struct Body: Sendable {
    /// The bytes.
    public var bytes: [UInt8]
    /// The content type to set when the headers have none.
    public var contentType: String?

    /// Bytes with an optional content type.
    public init(bytes: [UInt8], contentType: String? = nil) {
        self.bytes = bytes
        self.contentType = contentType
    }

    /// No body.
    public static let empty = Body(bytes: [])
    /// UTF-8 text, `text/plain;charset=UTF-8`.
    public static func text(_ text: String) -> Body {
        Body(bytes: Array(text.utf8), contentType: "text/plain;charset=UTF-8")
    }
    /// Raw bytes, `application/octet-stream`.
    public static func bytes(_ bytes: [UInt8]) -> Body { Body(bytes: bytes, contentType: "application/octet-stream") }
    /// A value encoded as JSON, `application/json`.
    public static func json<T: Encodable>(_ value: T) throws -> Body {
        Body(bytes: Array(try JSONEncoder().encode(value)), contentType: "application/json")
    }
}
