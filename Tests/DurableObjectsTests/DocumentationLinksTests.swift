import Foundation
import Testing

/// Users have the repository and nothing else: its documentation must not send them to files outside it.
@Suite("The documentation stands on its own")
struct DocumentationLinksTests {
    /// The documents users read: the READMEs, the DocC articles, the protos and the example configuration.
    static func documents() throws -> [URL] {
        let root = ProtocolArticleTests.repositoryRoot
        var found: [URL] = []
        for folder in ["Sources", "Protos", "Tests", "benchmarks", "examples", "."] {
            let url = root.appendingPathComponent(folder)
            let recursive = folder != "."
            let contents: [URL]
            if recursive {
                guard let walker = FileManager.default.enumerator(at: url, includingPropertiesForKeys: nil) else {
                    continue
                }
                contents = walker.compactMap { $0 as? URL }
            } else {
                contents = try FileManager.default.contentsOfDirectory(at: url, includingPropertiesForKeys: nil)
            }
            found += contents.filter {
                ["md", "proto", "toml"].contains($0.pathExtension) && !$0.path.contains("/.build")
            }
        }
        return found
    }

    @Test("no document names the planning files the project was built from")
    func noOutsideFiles() throws {
        let documents = try Self.documents()
        #expect(documents.count > 10)
        for document in documents {
            let text = try String(contentsOf: document, encoding: .utf8)
            for outside in ["SEMANTICS.md", "DESIGN.md", "NOTES.md", "STYLE.md", "../shared"] {
                #expect(!text.contains(outside), "\(document.path) names \(outside)")
            }
        }
    }

    @Test("every relative Markdown link points at a file of the repository")
    func relativeLinksResolve() throws {
        let pattern = try NSRegularExpression(pattern: #"\]\(([^)\s#]+)(#[^)]*)?\)"#)
        var checked = 0
        for document in try Self.documents() where document.pathExtension == "md" {
            let text = try String(contentsOf: document, encoding: .utf8)
            let range = NSRange(text.startIndex..., in: text)
            for match in pattern.matches(in: text, range: range) {
                guard let targetRange = Range(match.range(at: 1), in: text) else { continue }
                let target = String(text[targetRange])
                if target.contains("://") || target.hasPrefix("mailto:") || target.hasPrefix("doc:") { continue }
                let resolved = document.deletingLastPathComponent().appendingPathComponent(target).standardized
                #expect(
                    FileManager.default.fileExists(atPath: resolved.path),
                    "\(document.lastPathComponent) links to \(target), which is not in the repository")
                #expect(
                    resolved.path.hasPrefix(ProtocolArticleTests.repositoryRoot.standardized.path),
                    "\(document.lastPathComponent) links outside the repository: \(target)")
                checked += 1
            }
        }
        #expect(checked > 0)
    }
}
