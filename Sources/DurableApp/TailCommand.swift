import ArgumentParser
import DurableClient
import DurableObjects
import DurableWire
import Foundation
import Synchronization

/// `durable tail`: streams the log lines and uncaught errors of objects, live, from every node through the gateway.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Stream objects' log lines and uncaught errors, live, from every node (admin token).",
        discussion: """
            Objects log through `state.logger`. While a tail runs, every level reaches it (even below the nodes' \
            --log-level); with nobody tailing nothing is collected. A tail that reads too slowly loses events \
            rather than slowing the objects: the count of dropped events is printed to stderr.
            """
    )

    /// How events are printed.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case pretty, json
    }

    @Option(help: "Only the objects of this binding.")
    var binding: String?

    @Option(help: "Only this object of --binding: its 64-hex-digit id, or its name.")
    var id: String?

    @Option(help: "pretty: one readable line per event; json: one JSON object per line.")
    var format: Format = .pretty

    @Option(name: .customLong("max-events"), help: "Stop after this many events (default: run until interrupted).")
    var maxEvents: Int?

    @OptionGroup(title: "Gateway")
    var admin: AdminOptions

    func validate() throws {
        if id != nil, binding == nil { throw ValidationError("--id needs --binding (ids belong to a binding).") }
        if let maxEvents, maxEvents < 1 { throw ValidationError("--max-events must be at least 1.") }
    }

    func run() async throws {
        let client = try admin.client()
        let request = Durable_V1_TailRequest.with {
            $0.binding = binding ?? ""
            $0.object = id ?? ""
        }
        let printer = TailPrinter(format: format, limit: maxEvents)
        let scope = binding.map { "binding \($0)" + (id.map { ", object \($0)" } ?? "") } ?? "every object"
        let call = Task {
            try await client.callStreaming(Methods.tail, payload: try request.serializedBytes()) { bytes in
                guard let batch = try? Durable_V1_TailBatch(serializedBytes: bytes) else { return }
                printer.print(batch, scope: scope)
            }
        }
        printer.onLimit { call.cancel() }
        do {
            let summary = try Durable_V1_TailSummary(serializedBytes: try await call.value)
            printer.note("the gateway ended the tail (\(summary.events) events, \(summary.dropped) dropped)")
        } catch  where printer.reachedLimit {
            // --max-events was reached: the tail was cancelled on purpose.
        } catch let error as DurableObjectError {
            await client.close()
            throw CommandError(error.message)
        }
        await client.close()
    }
}

/// Prints tail batches as they arrive (called on the connection's thread, one batch at a time).
final class TailPrinter: Sendable {
    private struct State {
        var printed = 0
        var live = false
        var onLimit: (@Sendable () -> Void)?
        var reachedLimit = false
    }

    private let format: TailCommand.Format
    private let limit: Int?
    private let state = Mutex(State())

    init(format: TailCommand.Format, limit: Int?) {
        self.format = format
        self.limit = limit
    }

    /// What to run when `--max-events` is reached.
    func onLimit(_ action: @escaping @Sendable () -> Void) {
        let reached = state.withLock { state -> Bool in
            state.onLimit = action
            return state.reachedLimit
        }
        if reached { action() }
    }

    var reachedLimit: Bool { state.withLock { $0.reachedLimit } }

    func print(_ batch: Durable_V1_TailBatch, scope: String) {
        if batch.dropped > 0 { note("\(batch.dropped) events dropped: the tail fell behind") }
        let announce = state.withLock { state -> Bool in
            defer { state.live = true }
            return !state.live
        }
        if announce { note("tailing \(scope) (Ctrl-C to stop)") }
        for event in batch.events {
            let (allowed, finished) = state.withLock { state -> (Bool, (@Sendable () -> Void)?) in
                guard !state.reachedLimit else { return (false, nil) }
                state.printed += 1
                guard let limit, state.printed >= limit else { return (true, nil) }
                state.reachedLimit = true
                return (true, state.onLimit)
            }
            guard allowed else { return }
            let line = format == .json ? Self.json(event) : Self.pretty(event)
            FileHandle.standardOutput.write(Data((line + "\n").utf8))
            finished?()
        }
    }

    /// A line on stderr, out of the way of the events on stdout.
    func note(_ text: String) {
        FileHandle.standardError.write(Data("[tail] \(text)\n".utf8))
    }

    static func pretty(_ event: Durable_V1_TailEvent) -> String {
        let time = Date(timeIntervalSince1970: Double(event.timestampMicros) / 1_000_000)
        var parts = [isoFormatter.string(from: time), event.level.uppercased()]
        if event.kind == "tail" { return (parts + [event.message]).joined(separator: " ") }
        var object = event.binding.isEmpty ? event.className : event.binding
        object += " " + (event.objectName.isEmpty ? String(event.objectID.prefix(16)) : "\"\(event.objectName)\"")
        parts.append("[\(object) @\(event.node)]")
        if event.hasRequest {
            let request = event.request
            parts.append(request.event == "fetch" ? "\(request.method) \(request.url)" : request.event)
            if !request.requestID.isEmpty { parts.append("(request \(request.requestID))") }
        }
        parts.append(event.kind == "exception" ? "uncaught: \(event.message)" : event.message)
        let metadata = event.metadata.filter { $0.key != "object" && $0.key != "node" }
        if !metadata.isEmpty {
            parts.append(metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))
        }
        return parts.joined(separator: " ")
    }

    static func json(_ event: Durable_V1_TailEvent) -> String {
        var object: [String: Any] = [
            "time": isoFormatter.string(from: Date(timeIntervalSince1970: Double(event.timestampMicros) / 1_000_000)),
            "node": event.node, "binding": event.binding, "namespace": event.namespaceID, "class": event.className,
            "id": event.objectID, "kind": event.kind, "level": event.level, "message": event.message,
            "metadata": event.metadata,
        ]
        if !event.objectName.isEmpty { object["name"] = event.objectName }
        if event.hasRequest {
            var request: [String: String] = ["event": event.request.event]
            if !event.request.method.isEmpty { request["method"] = event.request.method }
            if !event.request.url.isEmpty { request["url"] = event.request.url }
            if !event.request.requestID.isEmpty { request["requestId"] = event.request.requestID }
            object["request"] = request
        }
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    nonisolated(unsafe) private static let isoFormatter: ISO8601DateFormatter = {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter
    }()
}
