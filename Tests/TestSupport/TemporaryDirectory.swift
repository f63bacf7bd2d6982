import Foundation

/// A fresh folder under the system's temporary directory, removed when the test is done with it.
public final class TemporaryDirectory: Sendable {
    /// The folder's path.
    public let path: String

    /// Creates the folder; `label` shows in its name.
    public init(_ label: String) {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("durable-tests-\(label)-\(UUID().uuidString)").path
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    /// The path of `name` inside the folder.
    public func child(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}
