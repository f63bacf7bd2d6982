import Foundation

/// The `durable` executable that `swift build` put beside the test binary.
enum DurableExecutable {
    static var url: URL {
        let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return testBinary.deletingLastPathComponent().appendingPathComponent("durable")
    }
}

/// Reads a pipe line by line (blocking).
final class LineReader {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private var finished = false

    init(_ handle: FileHandle) { self.handle = handle }

    /// The next whole line, or `nil` at end of file (a torn last line is dropped).
    func nextLine() -> String? {
        while true {
            if let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if finished { return nil }
            let data = handle.availableData
            if data.isEmpty { finished = true } else { buffer.append(contentsOf: data) }
        }
    }
}

/// Runs blocking work (reading a child's output, waiting for it to exit) on a Dispatch thread, so that it never
/// ties up the two threads of Swift's cooperative pool that every other test's tasks need.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}

/// Tests that load the whole machine (a cluster under faults, a 100 MiB flood). `make test` runs them in a pass of
/// their own after the others (`DURABLE_HEAVY_TESTS=1`), so that they do not starve the timing of tests running
/// beside them on a small machine.
enum HeavyTests {
    static let enabled = ProcessInfo.processInfo.environment["DURABLE_HEAVY_TESTS"] == "1"
}
