import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// An HTTP answer as a test reads it.
public struct HTTPAnswer: Sendable {
    /// The status code.
    public var status: Int
    /// The header fields (names as the server sent them).
    public var headers: [String: String]
    /// The body as text.
    public var text: String

    /// The value of the header `name`, whatever its case.
    public func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }
}

/// Sends HTTP requests to a server on loopback with URLSession (no proxy, no cache).
public enum HTTPTestClient {
    private static let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.connectionProxyDictionary = [:]
        configuration.timeoutIntervalForRequest = 30
        configuration.httpMaximumConnectionsPerHost = 64
        return URLSession(configuration: configuration)
    }()

    /// Sends one request and returns the answer.
    public static func send(
        _ url: String, method: String = "GET", headers: [String: String] = [:], body: String? = nil
    ) async throws -> HTTPAnswer {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = method
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        if let body { request.httpBody = Data(body.utf8) }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields { fields["\(name)"] = "\(value)" }
        return HTTPAnswer(status: http.statusCode, headers: fields, text: String(decoding: data, as: UTF8.self))
    }
}
