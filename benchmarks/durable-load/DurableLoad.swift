// The load generator: drives a durable gateway or node over the RPC protocol (DurableClient) or over HTTP
// through the bridge, closed-loop (C callers) or open-loop (a fixed arrival rate, latency counted from each
// call's intended start), and reports throughput, HdrHistogram percentiles and errors by kind, as text and JSON.
//
//   durable-load --rpc 127.0.0.1:7070 --workload increment --objects 1000 --callers 64 --seconds 5
//   durable-load --http http://127.0.0.1:8787 --workload hot --rate 5000 --json result.json
//
// `benchmarks/compare.py` runs it beside Redis and PostgreSQL; see benchmarks/README.md.

import ArgumentParser
import DurableClient
import DurableWire
import Foundation
import Histogram
import NIOCore
import NIOPosix

/// What each call does.
enum Workload: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// A durable increment of a `Counter` chosen at random among `--objects`.
    case increment
    /// A durable increment of one `Counter`.
    case hot
    /// A call the server answers without any object: RPC health at the target, or the worker's `/ping`.
    case noop
    /// A read of a `Counter`'s value, cached in the object after the first call (objects are primed first).
    case read
    /// One message sent into a room of `--listeners` WebSockets and delivered to each (HTTP target only).
    case broadcast
}

@main
struct DurableLoad: AsyncParsableCommand {
    /// The key from `--token-file` or `DURABLE_API_TOKEN`; `nil` when neither is set.
    func loadCredentials() throws -> RPCKey? {
        var text: String?
        if let tokenFile {
            do {
                text = try String(contentsOfFile: tokenFile, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read the token file \(tokenFile): \(error.localizedDescription)")
            }
        } else {
            text = ProcessInfo.processInfo.environment["DURABLE_API_TOKEN"]
        }
        guard let text else { return nil }
        do {
            return try RPCKey(text, role: .client)
        } catch let error as RPCKeyError {
            throw ValidationError(error.message)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "durable-load",
        abstract: "Drive a durable gateway or node with load and report throughput, latency percentiles and errors.")

    @Option(
        name: .long,
        help:
            "The RPC address of a gateway or node (HOST:PORT), or several gateways of one cluster, comma-separated (calls move to the next when one is lost)."
    )
    var rpc: String?

    @Option(name: .long, help: "The HTTP address of the bridge (http://HOST:PORT).")
    var http: String?

    @Option(name: .long, help: "increment | hot | noop | read | broadcast")
    var workload: Workload = .increment

    @Option(name: .long, help: "How many objects increment and read spread over.")
    var objects = 1_000

    @Option(name: .long, help: "Closed loop: how many concurrent callers (default 16 when no --rate).")
    var callers: Int?

    @Option(name: .long, help: "Open loop: calls started per second.")
    var rate: Double?

    @Option(name: .long, help: "Open loop: the most calls waiting at once; later calls are counted as not sent.")
    var maxInFlight = 10_000

    @Option(name: .long, help: "Seconds measured.")
    var seconds = 5.0

    @Option(name: .long, help: "Seconds of load before measuring (not recorded).")
    var warmup = 1.0

    @Option(name: .long, help: "RPC connections the client spreads calls over.")
    var connections = 4

    @Option(
        name: .customLong("bystander-rate"),
        help: ArgumentHelp(
            "RPC only: meanwhile, this many increments a second (open loop) to --objects other objects, reported "
                + "apart: what the main load (say, one hot object driven past its bounds) costs its neighbours."))
    var bystanderRate: Double?

    @Option(
        name: .customLong("token-file"),
        help: ArgumentHelp(
            "A file holding the key to prove over RPC: an API token for a gateway (`durable dev` writes one to "
                + ".durable/secrets/api-token), the cluster secret for a node (default: $DURABLE_API_TOKEN)."))
    var tokenFile: String?

    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp(
            "RPC over TLS: the CA certificate (PEM) that signed the server's certificate (`durable dev --tls` writes "
                + "one to .durable/tls/ca.pem)."))
    var tlsCA: String?

    /// The client side of TLS from `--tls-ca`; `nil` for plaintext.
    func loadTLS() throws -> RPCClientTLS? {
        guard let tlsCA else { return nil }
        do {
            return try RPCClientTLS(certificateAuthority: tlsCA)
        } catch {
            throw ValidationError("--tls-ca: \(error)")
        }
    }

    @Option(name: .long, help: "Broadcast: sockets in the room (senders included).")
    var listeners = 16

    @Option(name: .long, help: "Name objects PREFIX-0, PREFIX-1, … (default: a new prefix per run, so fresh objects).")
    var prefix: String?

    @Option(name: .long, help: "The binding of the Counter class (RPC).")
    var binding = "COUNTER"

    @Option(name: .long, help: "Deadline of each call, in seconds.")
    var timeout = 10.0

    @Option(name: .long, help: "Also write the results as JSON to this file.")
    var json: String?

    func validate() throws {
        guard (rpc == nil) != (http == nil) else { throw ValidationError("Give exactly one of --rpc and --http.") }
        if let callers, callers < 1 { throw ValidationError("--callers must be at least 1, not \(callers).") }
        if let rate, rate <= 0 { throw ValidationError("--rate must be positive, not \(rate).") }
        if callers != nil, rate != nil { throw ValidationError("Give --callers (closed loop) or --rate (open loop).") }
        if tlsCA != nil, rpc == nil { throw ValidationError("--tls-ca is for --rpc targets.") }
        guard objects >= 1 else { throw ValidationError("--objects must be at least 1.") }
        guard seconds > 0, warmup >= 0 else {
            throw ValidationError("--seconds must be positive, --warmup not negative.")
        }
        if workload == .broadcast, http == nil {
            throw ValidationError("The broadcast workload runs over WebSockets through the bridge: use --http.")
        }
        if let bystanderRate {
            guard rpc != nil else { throw ValidationError("--bystander-rate works with --rpc only.") }
            guard bystanderRate > 0 else { throw ValidationError("--bystander-rate must be positive.") }
        }
    }

    func run() async throws {
        // Swift tasks run on SwiftNIO's event loops, as in `durable` itself: the load generator shares the machine
        // with the system it measures and should spend as little as it can per call.
        // DURABLE_EVENT_LOOPS sets how many, as it does for `durable` (default: one per core).
        EventLoopCount.applyEnvironment()
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let callers = self.callers ?? 16
        let objectPrefix = prefix ?? "load-\(UUID().uuidString.prefix(8))"
        let recorder = Recorder()
        let target: String
        let operation: any Operation
        if let rpc {
            let servers = try Self.servers(rpc)
            target = servers.map { "rpc://\($0)" }.joined(separator: ",")
            operation = try await RPCOperation(
                servers: servers, connections: connections, credentials: try loadCredentials(), tls: try loadTLS(),
                workload: workload, objects: objects,
                prefix: objectPrefix, binding: binding, timeout: .milliseconds(Int64(timeout * 1000)))
        } else {
            let url = http!
            let trimmed = url.hasPrefix("http://") ? String(url.dropFirst("http://".count)) : url
            let (host, port) = try Self.hostAndPort(trimmed.trimmingCharacters(in: CharacterSet(charactersIn: "/")))
            target = "http://\(host):\(port)"
            if workload == .broadcast {
                progress("opening \(max(listeners, callers)) WebSockets to a broadcast room…")
                operation = try await BroadcastOperation(
                    host: host, port: port, listeners: listeners, senders: rate == nil ? callers : 1,
                    recorder: recorder)
            } else {
                operation = try HTTPOperation(
                    host: host, port: port, workload: workload, objects: objects, prefix: objectPrefix)
            }
        }
        if workload == .read || workload == .increment {
            progress("priming \(objects) objects…")
            try await operation.prime(callers: callers)
        }
        var bystanders: RPCOperation?
        if let bystanderRate, let rpc {
            bystanders = try await RPCOperation(
                servers: try Self.servers(rpc), connections: 1, credentials: try loadCredentials(),
                tls: try loadTLS(), workload: .increment,
                objects: objects, prefix: objectPrefix + "-bystander", binding: binding,
                timeout: .milliseconds(Int64(timeout * 1000)))
            progress("meanwhile \(bystanderRate) increments/s to \(objects) other objects, reported apart")
        }
        let mode = rate == nil ? "closed loop, \(callers) callers" : "open loop, \(rate!) calls/s"
        progress("\(workload.rawValue) against \(target), \(mode): \(warmup) s warm-up, \(seconds) s measured")
        let warmup = Duration.milliseconds(Int64(self.warmup * 1000))
        let duration = Duration.milliseconds(Int64(self.seconds * 1000))
        let statsBefore = await (operation as? RPCOperation)?.serverStats()
        let sideRecorder = Recorder()
        let maxInFlight = self.maxInFlight
        async let side: RunResult? = {
            guard let bystanders, let bystanderRate else { return nil }
            return await runOpenLoop(
                bystanders, rate: bystanderRate, maxInFlight: maxInFlight, warmup: warmup, duration: duration,
                recorder: sideRecorder, quiet: true)
        }()
        let result: RunResult
        if let rate {
            result = await runOpenLoop(
                operation, rate: rate, maxInFlight: maxInFlight, warmup: warmup, duration: duration,
                recorder: recorder)
        } else {
            result = await runClosedLoop(
                operation, callers: callers, warmup: warmup, duration: duration, recorder: recorder)
        }
        if let statsBefore, let statsAfter = await (operation as? RPCOperation)?.serverStats() {
            // Node targets report their group commits: how many writes shared each fsync.
            let syncs = statsAfter.groupCommitSyncs - statsBefore.groupCommitSyncs
            let batches = statsAfter.groupCommitBatches - statsBefore.groupCommitBatches
            let invocations = statsAfter.invocations - statsBefore.invocations
            progress(
                "node \(statsAfter.nodeID): \(invocations) invocations, \(batches) flushes in \(syncs) fsyncs"
                    + (syncs > 0
                        ? String(format: " (%.1f invocations per fsync)", Double(invocations) / Double(syncs)) : ""))
        }
        let bystanderResult = await side
        await operation.close()
        await bystanders?.close()
        var report = Report(
            target: target, workload: workload.rawValue, mode: rate == nil ? "closed" : "open",
            callers: rate == nil ? callers : nil, rate: rate, objects: workload == .hot ? 1 : objects,
            listeners: workload == .broadcast ? max(listeners, callers) : nil, result: result)
        report.bystanders = bystanderResult.map { (bystanderRate ?? 0, $0) }
        print(report.text)
        if let json {
            try report.json.write(to: URL(fileURLWithPath: json))
        }
        if result.completed == 0 {
            throw LoadError(
                "No call succeeded: \(result.errors.map { "\($0.key) \($0.value)" }.joined(separator: ", "))")
        }
    }

    /// The comma-separated `HOST:PORT` list of `--rpc`.
    static func servers(_ list: String) throws -> [DurableClient.Endpoint] {
        try list.split(separator: ",").map { entry in
            let (host, port) = try hostAndPort(entry.trimmingCharacters(in: .whitespaces))
            return DurableClient.Endpoint(host: host, port: port)
        }
    }

    static func hostAndPort(_ address: String) throws -> (String, Int) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
            (1...65535).contains(port)
        else { throw ValidationError("'\(address)' is not HOST:PORT.") }
        return (String(address[..<colon]), port)
    }
}
