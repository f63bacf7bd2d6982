import Foundation

/// The files of a new app package (`durable init`).
enum Scaffold {
    /// Where swift-durable-objects is fetched from by default.
    static let defaultRepository = "https://github.com/swift-durable-objects/swift-durable-objects.git"

    /// How the new package depends on swift-durable-objects.
    enum Dependency {
        /// A Git repository, at its `main` branch.
        case url(String)
        /// A local checkout.
        case path(String)

        /// How the manifest names the package in `.product(name:package:)`: SwiftPM derives it from the URL's or
        /// the folder's last component.
        var identity: String {
            let location: String
            switch self {
            case .url(let url): location = url
            case .path(let path): location = path
            }
            var last = location.split(separator: "/").last.map(String.init) ?? location
            if last.hasSuffix(".git") { last.removeLast(4) }
            return last.lowercased()
        }

        var packageLine: String {
            switch self {
            case .url(let url): ".package(url: \(literal(url)), branch: \"main\")"
            case .path(let path): ".package(path: \(literal(path)))"
            }
        }
    }

    /// The checkout of swift-durable-objects that `executable` was built in (…/.build/debug/durable), if any: the
    /// nearest folder above it whose `Package.swift` is this package's.
    static func enclosingCheckout(of executable: URL) -> String? {
        var folder = executable.resolvingSymlinksInPath().deletingLastPathComponent()
        while folder.path != "/" && !folder.path.isEmpty {
            let manifest = folder.appendingPathComponent("Package.swift")
            if let text = try? String(contentsOf: manifest, encoding: .utf8),
                text.contains(#"name: "swift-durable-objects""#)
            {
                return folder.standardizedFileURL.path
            }
            folder = folder.deletingLastPathComponent()
        }
        return nil
    }

    /// Whether `name` can name a package, its folder and its executable.
    static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic, first.isASCII else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII
                && ($0.properties.isAlphabetic || ("0"..."9").contains($0)
                    || $0 == "-" || $0 == "_")
        }
    }

    /// The Swift module of the app's objects: `hello-counter` → `HelloCounterObjects`.
    static func moduleName(_ name: String) -> String {
        name.split(whereSeparator: { $0 == "-" || $0 == "_" }).map { $0.prefix(1).uppercased() + $0.dropFirst() }
            .joined() + "Objects"
    }

    /// Path → contents.
    static func files(name: String, dependency: Dependency) -> [String: String] {
        let module = moduleName(name)
        return [
            "Package.swift": packageManifest(name: name, module: module, dependency: dependency),
            "durable.toml": configuration(name: name),
            "Sources/\(module)/Counter.swift": counter,
            "Sources/\(module)/App.swift": app,
            "Sources/\(name)/main.swift": "import DurableApp\nimport \(module)\n\nawait application.main()\n",
            "Tests/\(module)Tests/CounterTests.swift": tests(module: module),
            ".gitignore": ".build/\n.durable/\nPackage.resolved\n.swiftpm/\n",
            "README.md": readme(name: name, module: module),
        ]
    }

    static func literal(_ text: String) -> String {
        "\"" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func packageManifest(name: String, module: String, dependency: Dependency) -> String {
        let package = literal(dependency.identity)
        return """
            // swift-tools-version: 6.1
            import PackageDescription

            let package = Package(
                name: \(literal(name)),
                platforms: [.macOS(.v15)],
                dependencies: [
                    \(dependency.packageLine),
                ],
                targets: [
                    .target(
                        name: "\(module)",
                        dependencies: [.product(name: "DurableObjects", package: \(package))]
                    ),
                    .executableTarget(
                        name: \(literal(name)),
                        dependencies: ["\(module)", .product(name: "DurableApp", package: \(package))]
                    ),
                    .testTarget(
                        name: "\(module)Tests",
                        dependencies: [
                            "\(module)", .product(name: "DurableObjectsTesting", package: \(package)),
                        ]
                    ),
                ]
            )

            """
    }

    static func configuration(name: String) -> String {
        """
        name = \(literal(name))

        [durable_objects]
        bindings = [ { name = "COUNTER", class_name = "Counter" } ]

        [[migrations]]
        tag = "v1"
        new_classes = ["Counter"]

        """
    }

    static let counter = """
        import DurableObjects

        /// A counter: `/increment` and `/decrement` change the stored value, `/` reads it.
        public actor Counter: DurableObject {
            public nonisolated let state: DurableObjectState

            public init(state: DurableObjectState, env: Environment) {
                self.state = state
            }

            public func fetch(_ request: Request) async throws -> Response {
                var value = try await state.storage.get("value", as: Int.self) ?? 0
                switch request.path {
                case "/increment": value += 1
                case "/decrement": value -= 1
                case "/": return Response("\\(value)")
                default: return Response("Not found", status: .notFound)
                }
                try state.storage.put("value", value)
                return Response("\\(value)")
            }
        }

        """

    static let app = """
        import DurableObjects

        /// The worker: `?name=` picks the counter (default `A`); the path says what to do.
        public let worker = Worker { request, env in
            let counters = try env.namespace("COUNTER")
            let name = request.queryItems.first { $0.name == "name" }?.value ?? "A"
            let response = try await counters.getByName(name).fetch(request)
            guard response.status == .ok else { return response }
            return Response("Durable Object '\\(name)' count: \\(response.text())")
        }

        /// The app: its classes and its worker (the configuration is ./durable.toml).
        public let application = DurableApplication(classes: [DurableObjectClass(Counter.self)], worker: worker)

        """

    static func tests(module: String) -> String {
        """
        import DurableObjects
        import DurableObjectsTesting
        import Testing
        import \(module)

        @Suite struct CounterTests {
            @Test func countsAndKeepsItsValue() async throws {
                let runtime = try DurableTestRuntime(
                    classes: [DurableObjectClass(Counter.self)], bindings: ["COUNTER": "Counter"])
                let counter = try runtime.namespace("COUNTER").getByName("A")
                #expect(try await counter.fetch("http://counter/increment").text() == "1")
                #expect(try await counter.fetch("http://counter/increment").text() == "2")
                #expect(try await counter.fetch("http://counter/decrement").text() == "1")
                let answer = try await worker.fetch(Request(url: "http://app/?name=A"), runtime.env)
                #expect(answer.text() == "Durable Object 'A' count: 1")
                await runtime.close()
            }
        }

        """
    }

    static func readme(name: String, module: String) -> String {
        """
        # \(name)

        A durable objects app: `Sources/\(module)/Counter.swift` is the object, `Sources/\(module)/App.swift` the
        worker that receives HTTP requests, `durable.toml` its bindings and migrations.

            swift run \(name) dev                                  # http://127.0.0.1:8787
            curl http://127.0.0.1:8787/increment?name=A            # Durable Object 'A' count: 1
            swift test

        """
    }
}
