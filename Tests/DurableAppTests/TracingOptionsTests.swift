import ArgumentParser
import Testing

@testable import DurableApp

@Suite("--otel-endpoint and --trace-sampling")
struct TracingOptionsTests {
    @Test("off by default in gateway, node and dev: no endpoint, nothing to bootstrap")
    func offByDefault() throws {
        #expect(try GatewayCommand.parse(["--data", "/tmp/x"]).tracing.tracesURL == nil)
        #expect(try NodeCommand.parse(["--data", "/tmp/x"]).tracing.tracesURL == nil)
        #expect(try DevCommand.parse([]).tracing.tracesURL == nil)
    }

    @Test("the endpoint is a collector's base URL: /v1/traces is appended unless it is there")
    func tracesURL() throws {
        let options = { (endpoint: String) in
            try NodeCommand.parse(["--data", "/tmp/x", "--otel-endpoint", endpoint]).tracing.tracesURL
        }
        #expect(try options("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces")
        #expect(try options("http://collector:4318/") == "http://collector:4318/v1/traces")
        #expect(try options("https://collector/v1/traces") == "https://collector/v1/traces")
        let sampled = try DevCommand.parse(["--otel-endpoint", "http://127.0.0.1:4318", "--trace-sampling", "0.01"])
        #expect(sampled.tracing.traceSampling == 0.01)
    }

    @Test(
        "bad values are refused at parse time, naming the option",
        arguments: [
            (["--otel-endpoint", "127.0.0.1:4318"], "--otel-endpoint"),
            (["--otel-endpoint", "ftp://collector"], "--otel-endpoint"),
            (["--otel-endpoint", "http://c:4318", "--trace-sampling", "1.5"], "--trace-sampling"),
            (["--otel-endpoint", "http://c:4318", "--trace-sampling", "-0.1"], "--trace-sampling"),
            (["--otel-endpoint", "http://c:4318", "--trace-sampling", "nan"], "--trace-sampling"),
            (["--otel-endpoint", "http://c:4318", "--trace-sampling", "half"], "--trace-sampling"),
            (["--trace-sampling", "0.5"], "--trace-sampling needs --otel-endpoint"),
        ])
    func refused(arguments: [String], mentions: String) {
        for (command, base) in [
            (GatewayCommand.self as any ParsableCommand.Type, ["--data", "/tmp/x"]),
            (NodeCommand.self, ["--data", "/tmp/x"]), (DevCommand.self, []),
        ] {
            let message = tracingRefusal(command, base + arguments)
            #expect(message?.contains(mentions) == true, "\(command): \(message ?? "accepted")")
        }
    }

    private func tracingRefusal(_ command: any ParsableCommand.Type, _ arguments: [String]) -> String? {
        do {
            _ = try command.parseAsRoot(arguments)
            return nil
        } catch {
            return command.message(for: error)
        }
    }
}
