import Foundation
import Testing

/// The modules stack in layers: storage, wire and tracing (spans and trace context, which every layer above uses) at
/// the bottom, then the object model, the protocol between wire and model, node and client, gateway and HTTP bridge,
/// and the app on top. A module imports only modules of lower layers, so that a change below never needs one above,
/// and a newcomer can read the stack from the bottom up.
@Suite("Module layering")
struct LayeringTests {
    /// Each module's layer.
    static let layers: [String: Int] = [
        "CRocksDB": 0, "DurableTracing": 0,
        "DurableStorage": 1, "DurableWire": 1, "DurableMetrics": 1, "DurableEtcd": 1, "DurableCertificates": 1,
        "DurableObjects": 2,
        "DurableProtocol": 3, "DurableObjectsTesting": 3, "DurableExamples": 3,
        "DurableNode": 4, "DurableClient": 4,
        "DurableGateway": 5, "DurableHTTP": 5, "DurableChaos": 5,
        "DurableApp": 6,
        "durable": 7, "durable-test-server": 7, "durable-chaos": 7, "durable-load": 7, "objects-benchmark": 7,
        "storage-benchmark": 7,
    ]

    /// The project modules `text` imports.
    static func imports(in text: String) -> Set<String> {
        var found: Set<String> = []
        for line in text.split(separator: "\n") {
            var words = line.split(separator: " ").map(String.init)
            if words.first?.hasPrefix("@") == true { words.removeFirst() }
            guard words.first == "import", words.count >= 2 else { continue }
            // `import struct Module.Symbol` or `import Module`.
            let target = words.count >= 3 ? words[2] : words[1]
            let module = String(target.split(separator: ".").first ?? "")
            if layers[module] != nil { found.insert(module) }
        }
        return found
    }

    @Test("every module imports only modules of lower layers")
    func importsGoDown() throws {
        let sources = ProtocolArticleTests.repositoryRoot.appendingPathComponent("Sources")
        let modules = try FileManager.default.contentsOfDirectory(atPath: sources.path).filter { !$0.hasPrefix(".") }
        var checked = 0
        for module in modules.sorted() {
            let layer = try #require(Self.layers[module], "module \(module) has no layer: add it to the table")
            let folder = sources.appendingPathComponent(module)
            guard let walker = FileManager.default.enumerator(atPath: folder.path) else { continue }
            for case let file as String in walker where file.hasSuffix(".swift") {
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                for imported in Self.imports(in: text) where imported != module {
                    checked += 1
                    #expect(
                        Self.layers[imported]! < layer,
                        "\(module)/\(file) imports \(imported), which is not below it")
                }
            }
        }
        #expect(checked > 20)
    }

    @Test("the import reader finds plain and symbol imports")
    func readsImports() {
        let text =
            "import DurableWire\n@_exported import struct DurableWire.RPCKey\nimport Foundation\n// import DurableApp"
        #expect(Self.imports(in: text) == ["DurableWire"])
    }
}
