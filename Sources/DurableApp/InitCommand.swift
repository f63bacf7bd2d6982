import ArgumentParser
import Foundation

/// `durable init NAME`: scaffolds an app package: one counter object, its worker, its `durable.toml`, the `main`
/// that gives it every `durable` subcommand, and a test.
struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new app package: a counter object, its worker, durable.toml and a test."
    )

    @Argument(help: "The package's name (also its folder and executable).")
    var name: String

    @Option(help: "The folder to create the package in.")
    var directory: String = "."

    @Option(
        name: .customLong("durable-path"),
        help: """
            Depend on this local checkout of swift-durable-objects (by default, the checkout this durable was built \
            in, when it was built in one).
            """)
    var durablePath: String?

    @Option(
        name: .customLong("durable-url"),
        help: "Depend on swift-durable-objects' Git repository at this URL instead of a local checkout.")
    var durableURL: String?

    func validate() throws {
        guard Scaffold.isValidName(name) else {
            throw ValidationError(
                "'\(name)' is not a package name: use letters, digits, '-' and '_', starting with a letter")
        }
    }

    func run() throws {
        let root = URL(fileURLWithPath: directory).appendingPathComponent(name)
        guard !FileManager.default.fileExists(atPath: root.path) else {
            throw CommandError("\(root.path) already exists; choose another name or folder.")
        }
        let dependency: Scaffold.Dependency
        if let durablePath {
            dependency = .path(URL(fileURLWithPath: durablePath).standardizedFileURL.path)
        } else if let durableURL {
            dependency = .url(durableURL)
        } else if let checkout = Scaffold.enclosingCheckout(of: URL(fileURLWithPath: "/proc/self/exe")) {
            dependency = .path(checkout)
        } else {
            dependency = .url(Scaffold.defaultRepository)
        }
        let files = Scaffold.files(name: name, dependency: dependency)
        for (path, contents) in files.sorted(by: { $0.key < $1.key }) {
            let url = root.appendingPathComponent(path)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try contents.write(to: url, atomically: true, encoding: .utf8)
            print("  created \(name)/\(path)")
        }
        switch dependency {
        case .path(let path): print("  depends on the swift-durable-objects checkout at \(path)")
        case .url(let url): print("  depends on swift-durable-objects at \(url)")
        }
        print(
            """

            Next:
              cd \(root.path)
              swift run \(name) dev      # serves http://127.0.0.1:8787
              swift test
            """)
    }
}
