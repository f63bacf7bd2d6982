import Foundation
import HTTPTypes

/// An HTTP-shaped response returned by an object's `fetch`.
public struct Response: Sendable {
    /// Status and headers, as swift-http-types models them.
    public var head: HTTPResponse
    /// The body's bytes.
    public var body: [UInt8]

    /// Creates a response from its parts.
    public init(head: HTTPResponse, body: [UInt8] = []) {
        self.head = head
        self.body = body
    }

    /// Creates a response with a status, headers and a body.
    public init(status: HTTPResponse.Status = .ok, headers: HTTPFields = [:], body: Body = .empty) {
        var fields = headers
        if let contentType = body.contentType, fields[.contentType] == nil { fields[.contentType] = contentType }
        head = HTTPResponse(status: status, headerFields: fields)
        self.body = body.bytes
    }

    /// A `text/plain` response.
    public init(_ text: String, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) {
        self.init(status: status, headers: headers, body: .text(text))
    }

    /// A JSON response.
    public static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        Response(status: status, body: try .json(value))
    }

    /// The status.
    public var status: HTTPResponse.Status { head.status }
    /// The headers.
    public var headers: HTTPFields {
        get { head.headerFields }
        set { head.headerFields = newValue }
    }
    /// The body decoded as UTF-8.
    public func text() -> String { String(decoding: body, as: UTF8.self) }
    /// The body decoded as JSON.
    public func json<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(body))
    }
}
