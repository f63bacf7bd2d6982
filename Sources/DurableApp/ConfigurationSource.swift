import DurableGateway
import DurableObjects
import Foundation

/// Where a command finds the app's `durable.toml`.
enum ConfigurationSource {
    /// `--config FILE` when given, else `durable.toml` in the working directory, else the configuration built into
    /// the app.
    ///
    /// - Throws: ``ConfigurationError`` naming the file and key of a malformed configuration, or
    ///   ``CommandError`` when there is none at all.
    static func load(path: String?, app: DurableApplication) throws -> (configuration: AppConfiguration, text: String) {
        if let path {
            return try read(path)
        }
        if FileManager.default.fileExists(atPath: "durable.toml") {
            return try read("durable.toml")
        }
        guard let text = app.configuration else {
            throw CommandError("No configuration: pass --config FILE or create durable.toml in the working directory.")
        }
        return (try ConfigurationParser.parse(text, file: "built-in durable.toml"), text)
    }

    private static func read(_ path: String) throws -> (configuration: AppConfiguration, text: String) {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw CommandError("Cannot read the configuration \(path): \(error.localizedDescription)")
        }
        return (try ConfigurationParser.parse(text, file: path), text)
    }

    /// The bindings a node serves on its own, before any gateway defines them: the configuration's top-level
    /// bindings, else one per exported class under the class's name.
    static func defaultBindings(app: DurableApplication) -> [String: String] {
        if let configuration = try? load(path: nil, app: app).configuration, !configuration.bindings.isEmpty {
            return Dictionary(
                configuration.bindings.filter { $0.scriptName == nil }.map { ($0.name, $0.className) }
            ) { first, _ in first }
        }
        return Dictionary(uniqueKeysWithValues: app.classes.map { ($0.name, $0.name) })
    }
}
