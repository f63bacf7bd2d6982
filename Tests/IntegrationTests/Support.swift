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

/// What a child process left when it ended.
struct ChildResult: Sendable {
    var status: Int32
    var output: String
    var errors: String
}

/// Runs `executable` to its end with `arguments` (and `environment`, else this process's), reading its standard
/// output and standard error at the same time so that neither pipe can fill up and stall it; off the cooperative
/// pool.
func runChild(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil) async throws
    -> ChildResult
{
    try await offPool {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let errorData = Data.Buffer()
        let reader = Thread { errorData.set(errors.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        errorData.wait()
        return ChildResult(
            status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
            errors: String(decoding: errorData.value, as: UTF8.self))
    }
}

extension Data {
    /// A box one thread fills and another reads once it is set.
    final class Buffer: @unchecked Sendable {
        private let condition = NSCondition()
        private var data: Data?

        func set(_ value: Data) {
            condition.withLock {
                data = value
                condition.broadcast()
            }
        }

        /// Blocks until the box is filled.
        func wait() {
            condition.withLock { while data == nil { condition.wait() } }
        }

        var value: Data { condition.withLock { data ?? Data() } }
    }
}
