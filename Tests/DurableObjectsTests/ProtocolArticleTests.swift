import DurableObjects
import Foundation
import Testing

/// The WireProtocol article is what clients in other languages are written from: its test vector must be what the
/// code derives, and it must name every method the code defines.
@Suite("The WireProtocol article")
struct ProtocolArticleTests {
    /// The repository's root, found from this file (`Tests/DurableObjectsTests/…`).
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// The article's text.
    static func article() throws -> String {
        let url = repositoryRoot.appendingPathComponent("Sources/DurableObjects/Documentation.docc/WireProtocol.md")
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// The fields of the fenced block that starts with `test-vector: <name>`, by the text before each line's `: `.
    static func testVector(_ name: String, in article: String) throws -> [String: String] {
        let lines = article.components(separatedBy: "\n")
        let start = try #require(
            lines.firstIndex(of: "test-vector: \(name)"), "the article has no test vector named \(name)")
        var fields: [String: String] = [:]
        for line in lines[(start + 1)...] {
            if line.hasPrefix("```") { break }
            guard let separator = line.range(of: ": ") else { continue }
            fields[String(line[..<separator.lowerBound])] = String(line[separator.upperBound...])
        }
        return fields
    }

    /// The bytes that `hex` writes, two digits a byte; `nil` for anything else.
    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count.isMultiple(of: 2) else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16) else {
                return nil
            }
            bytes.append(byte)
        }
        return bytes
    }

    @Test("the id-from-name test vector is the id NamespaceKey derives, valid in its namespace, in its slot")
    func idTestVector() throws {
        let vector = try Self.testVector("id-from-name", in: try Self.article())
        let secret = try #require(vector["secret (hex)"].flatMap(Self.bytes(hex:)), "no secret in \(vector)")
        let name = try #require(vector["name"], "no name in \(vector)")
        let expected = try #require(vector["id (hex)"], "no id in \(vector)")
        #expect(secret.count == 32)

        let key = NamespaceKey(secret: secret)
        let id = key.id(forName: name)
        #expect(id.hexString == expected)
        #expect(try key.id(fromString: expected) == id)
        #expect(vector["slot"] == "\(PlacementEpochs.slot(of: id))")
    }

    @Test("the article names every method the code defines")
    func methodsNamed() throws {
        let article = try Self.article()
        let folders = ["Sources/DurableProtocol", "Sources/DurableWire"]
        var methods: Set<String> = []
        for folder in folders {
            let directory = Self.repositoryRoot.appendingPathComponent(folder)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path)
            where file.hasSuffix(".swift") {
                let text = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
                methods.formUnion(Self.methodNames(in: text))
            }
        }
        // The method constants of `Methods` (DurableProtocol) and `AuthMethods` (DurableWire), at least.
        #expect(methods.count >= 23, "found only \(methods.sorted())")
        for method in methods.sorted() {
            #expect(article.contains("`\(method)`"), "WireProtocol.md does not name \(method)")
        }
    }

    /// The string literals of `text` that are full method names: `"durable.v1.<Service>/<Method>"`.
    static func methodNames(in text: String) -> Set<String> {
        var names: Set<String> = []
        var rest = text[...]
        while let start = rest.range(of: "\"durable.v1.") {
            let literal = rest[rest.index(after: start.lowerBound)...]
            guard let end = literal.firstIndex(of: "\"") else { break }
            let name = literal[..<end]
            if let slash = name.firstIndex(of: "/"), name.index(after: slash) < name.endIndex,
                name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "." || $0 == "/" })
            {
                names.insert(String(name))
            }
            rest = literal[literal.index(after: end)...]
        }
        return names
    }
}
