import Foundation
import Synchronization

/// A child process of a test, started, watched and ended without blocking Swift's cooperative pool.
///
/// Both output streams are read to their end by threads of their own, so a chatty child never stalls on a full
/// pipe, and a test can wait for a line (`waitForLine`) or read everything printed so far. Every child is killed when
/// its `ChildProcess` goes away, and any still running when the test process exits is killed then too, so a failed
/// or timed-out test leaves nothing behind.
public final class ChildProcess: Sendable {
    /// What a child left when it ended.
    public struct Outcome: Sendable {
        /// Its exit status, or the signal that ended it.
        public var status: Int32
        /// Whether a signal ended it.
        public var signalled: Bool
        /// Its standard output.
        public var output: String
        /// Its standard error.
        public var errors: String
    }

    /// A wait that ran out, or a child that ended before it printed what the test waited for.
    public struct Failure: Error, CustomStringConvertible {
        /// What went wrong, with the end of the child's standard error.
        public var description: String

        /// A failure described by `description`.
        public init(description: String) { self.description = description }
    }

    /// The process (for its pid; do not wait on it directly).
    public let process: Process
    /// A short name for messages.
    public let name: String
    private let standardOutput: LineCollector
    private let standardError: LineCollector
    private let exit: ExitWatch

    /// Starts `executable` with `arguments`, in `directory` (else this process's), with `environment` (else this
    /// process's).
    public init(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil,
        name: String? = nil
    ) throws {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        let outputPipe = Pipe()
        let errorPipe = Pipe()
        process.standardOutput = outputPipe
        process.standardError = errorPipe
        process.standardInput = FileHandle.nullDevice
        let exit = ExitWatch()
        process.terminationHandler = { process in
            exit.finish(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal)
        }
        try process.run()
        ChildRegistry.add(process.processIdentifier)
        self.process = process
        self.name = name ?? ([executable.lastPathComponent] + arguments.prefix(1)).joined(separator: " ")
        self.exit = exit
        standardOutput = LineCollector(outputPipe.fileHandleForReading)
        standardError = LineCollector(errorPipe.fileHandleForReading)
    }

    /// Runs a command to its end and returns what it left; kills it when it runs past `timeLimit` (and throws) or
    /// when the calling task is cancelled.
    public static func run(
        _ executable: URL, _ arguments: [String], environment: [String: String]? = nil, directory: URL? = nil,
        timeLimit: Duration = .seconds(300)
    ) async throws -> Outcome {
        let child = try await offPool {
            try ChildProcess(executable, arguments, environment: environment, directory: directory)
        }
        return try await child.outcome(within: timeLimit)
    }

    /// The process id.
    public var pid: Int32 { process.processIdentifier }

    /// Whether it still runs.
    public var isRunning: Bool { !exit.hasFinished }

    /// Sends `signal` (SIGTERM unless told otherwise) if it still runs.
    public func send(_ signal: Int32 = SIGTERM) {
        if isRunning { kill(pid, signal) }
    }

    /// The lines printed on standard output so far.
    public var outputLines: [String] { standardOutput.lines }

    /// Everything printed on standard error so far.
    public var errorText: String { standardError.text }

    /// One of the child's output streams.
    public enum Stream: Sendable {
        /// Standard output.
        case output
        /// Standard error (where the servers log).
        case errors
    }

    /// Waits until the child prints a line (on standard output unless told otherwise) for which `match` returns a
    /// value, and returns it. Lines printed before the call count too.
    ///
    /// - Throws: ``Failure`` when the child ends first or `timeout` passes (the message has the end of its log).
    public func waitForLine<T: Sendable>(
        on stream: Stream = .output, timeout: Duration = .seconds(120), _ match: @escaping @Sendable (String) -> T?
    ) async throws -> T {
        do {
            return try await (stream == .output ? standardOutput : standardError).first(timeout: timeout, match)
        } catch let reason as LineCollector.WaitFailure {
            throw Failure(
                description: "\(name): \(reason.description)\n--- its standard error ends with:\n"
                    + standardError.lines.suffix(30).joined(separator: "\n"))
        }
    }

    /// Waits for the child to end and returns its exit status; past `timeout` it is killed and this throws.
    @discardableResult
    public func exitStatus(within timeout: Duration = .seconds(120)) async throws -> Int32 {
        if try await exit.wait(timeout: timeout) == nil {
            send(SIGKILL)
            _ = try? await exit.wait(timeout: .seconds(30))
            throw Failure(
                description: "\(name) did not exit within \(timeout); killed it. Its standard error ends with:\n"
                    + standardError.lines.suffix(30).joined(separator: "\n"))
        }
        return exit.status
    }

    /// Waits for the child to end (killing it past `timeout`) and for both its streams to close; returns it all.
    public func outcome(within timeout: Duration = .seconds(300)) async throws -> Outcome {
        let status = try await exitStatus(within: timeout)
        await standardOutput.waitForEnd()
        await standardError.waitForEnd()
        return Outcome(
            status: status, signalled: exit.signalled, output: standardOutput.text, errors: standardError.text)
    }

    /// Whether a signal ended the child (valid once it has ended).
    public var wasSignalled: Bool { exit.signalled }

    deinit {
        if !exit.hasFinished { kill(process.processIdentifier, SIGKILL) }
        ChildRegistry.remove(process.processIdentifier)
    }
}

/// The children alive in this test process; whatever is left when it exits is killed.
enum ChildRegistry {
    private static let pids = Mutex<Set<Int32>>([])
    private static let installed: Void = {
        atexit { ChildRegistry.killAll() }
    }()

    static func add(_ pid: Int32) {
        _ = installed
        pids.withLock { _ = $0.insert(pid) }
    }

    static func remove(_ pid: Int32) {
        pids.withLock { _ = $0.remove(pid) }
    }

    static func killAll() {
        for pid in pids.withLock({ $0 }) { kill(pid, SIGKILL) }
    }
}

/// Resumes waiters when the child ends.
final class ExitWatch: Sendable {
    private struct State {
        var finished = false
        var status: Int32 = 0
        var signalled = false
        var waiters: [UInt64: CheckedContinuation<Bool, Never>] = [:]
        var next: UInt64 = 0
    }
    private let state = Mutex(State())

    var hasFinished: Bool { state.withLock { $0.finished } }
    var status: Int32 { state.withLock { $0.status } }
    var signalled: Bool { state.withLock { $0.signalled } }

    func finish(status: Int32, signalled: Bool) {
        let waiters = state.withLock { state in
            state.finished = true
            state.status = status
            state.signalled = signalled
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        for waiter in waiters { waiter.resume(returning: true) }
    }

    /// Waits up to `timeout` for the end; returns the status, or nil when the time ran out.
    func wait(timeout: Duration) async throws -> Int32? {
        let ticket = state.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.state.withLock { $0.waiters.removeValue(forKey: ticket) }?.resume(returning: false)
        }
        defer { timer.cancel() }
        let finished = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.finished { return true }
                    state.waiters[ticket] = continuation
                    return false
                }
                if now { continuation.resume(returning: true) }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: ticket) }?.resume(returning: false)
        }
        try Task.checkCancellation()
        return finished ? status : nil
    }
}

/// Reads a stream to its end on a thread of its own, keeping its lines and waking whoever waits for one.
final class LineCollector: Sendable {
    struct WaitFailure: Error, CustomStringConvertible {
        var description: String
    }

    private struct Waiter {
        var match: @Sendable (String) -> (any Sendable)?
        var continuation: CheckedContinuation<any Sendable, any Error>
    }

    private struct State {
        var lines: [String] = []
        var raw: [UInt8] = []
        var partial: [UInt8] = []
        var ended = false
        var waiters: [UInt64: Waiter] = [:]
        var endWaiters: [CheckedContinuation<Void, Never>] = []
        var next: UInt64 = 0
    }
    private let state = Mutex(State())

    init(_ handle: FileHandle) {
        let descriptor = handle.fileDescriptor
        let thread = Thread { [self] in
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0 && errno == EINTR { continue }
                if count <= 0 { break }
                received(buffer[0..<count])
            }
            ended()
            try? handle.close()
        }
        thread.name = "durable-tests.child-output"
        thread.start()
    }

    var lines: [String] { state.withLock { $0.lines } }
    /// Everything read so far, as text.
    var text: String { state.withLock { String(decoding: $0.raw, as: UTF8.self) } }

    private func received(_ bytes: ArraySlice<UInt8>) {
        var resumed: [(Waiter, any Sendable)] = []
        state.withLock { state in
            state.raw.append(contentsOf: bytes)
            state.partial.append(contentsOf: bytes)
            while let newline = state.partial.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: state.partial[..<newline], as: UTF8.self)
                state.partial.removeSubrange(...newline)
                state.lines.append(line)
                for (ticket, waiter) in state.waiters {
                    if let value = waiter.match(line) {
                        state.waiters[ticket] = nil
                        resumed.append((waiter, value))
                    }
                }
            }
        }
        for (waiter, value) in resumed { waiter.continuation.resume(returning: value) }
    }

    private func ended() {
        let (waiters, endWaiters) = state.withLock { state in
            if !state.partial.isEmpty {
                state.lines.append(String(decoding: state.partial, as: UTF8.self))
                state.partial = []
            }
            state.ended = true
            defer {
                state.waiters.removeAll()
                state.endWaiters.removeAll()
            }
            return (Array(state.waiters.values), state.endWaiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: WaitFailure(description: "it ended before printing the awaited line"))
        }
        for waiter in endWaiters { waiter.resume() }
    }

    /// Waits until the stream has ended.
    func waitForEnd() async {
        await withCheckedContinuation { continuation in
            let now = state.withLock { state -> Bool in
                if state.ended { return true }
                state.endWaiters.append(continuation)
                return false
            }
            if now { continuation.resume() }
        }
    }

    /// The value `match` gives for the first line (printed before or after this call) that it accepts.
    func first<T: Sendable>(timeout: Duration, _ match: @escaping @Sendable (String) -> T?) async throws -> T {
        let ticket = state.withLock { state -> UInt64 in
            state.next += 1
            return state.next
        }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            self.state.withLock { $0.waiters.removeValue(forKey: ticket) }?.continuation.resume(
                throwing: WaitFailure(description: "no awaited line within \(timeout)"))
        }
        defer { timer.cancel() }
        let value = try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<any Sendable, any Error>) in
                let now = state.withLock { state -> LineSearch in
                    for line in state.lines {
                        if let value = match(line) { return .found(value) }
                    }
                    if state.ended { return .ended }
                    state.waiters[ticket] = Waiter(match: match, continuation: continuation)
                    return .waiting
                }
                switch now {
                case .found(let value): continuation.resume(returning: value)
                case .ended:
                    continuation.resume(
                        throwing: WaitFailure(description: "it ended before printing the awaited line"))
                case .waiting: break
                }
            }
        } onCancel: {
            state.withLock { $0.waiters.removeValue(forKey: ticket) }?.continuation.resume(
                throwing: CancellationError())
        }
        return value as! T
    }
}

/// What a look through the lines read so far found.
private enum LineSearch {
    case found(any Sendable)
    case ended
    case waiting
}
