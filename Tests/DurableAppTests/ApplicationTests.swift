import ArgumentParser
import DurableGateway
import DurableObjects
import Foundation
import TestSupport
import Testing

@testable import DurableApp

@Suite("Apps and their command line")
struct ApplicationTests {
    @Test("an app without a worker fails at start with the platform's words")
    func noEventHandlers() async throws {
        CurrentApplication.value = DurableApplication(classes: migratingApp.classes)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("durable-noworker-\(UUID())").path
        for arguments in [["--data", folder, "--port", "0", "--rpc-port", "0"]] {
            let dev = try DevCommand.parse(arguments)
            await #expect { try await dev.run() } throws: { error in
                "\(error)" == "No event handlers were registered. This script does nothing."
            }
            let gateway = try GatewayCommand.parse(arguments)
            await #expect { try await gateway.run() } throws: { error in
                "\(error)" == "No event handlers were registered. This script does nothing."
            }
        }
        #expect(!FileManager.default.fileExists(atPath: folder), "nothing was created")
    }

    @Test("the WebSocket message limit is an option of dev and gateway, checked at parse time")
    func messageLimitOption() throws {
        #expect(try DevCommand.parse(["--max-websocket-message-size", "2048"]).maxWebsocketMessageSize == 2048)
        #expect(try DevCommand.parse([]).maxWebsocketMessageSize == 1_048_576)
        let zero = refusal(DevCommand.self, ["--max-websocket-message-size", "0"])
        #expect(zero?.contains("--max-websocket-message-size") == true, "\(zero ?? "accepted")")
        let negative = refusal(GatewayCommand.self, ["--data", "/tmp/x", "--max-websocket-message-size", "-5"])
        #expect(negative?.contains("--max-websocket-message-size") == true, "\(negative ?? "accepted")")
    }

    @Test("durable init finds the checkout it was built in, and no checkout elsewhere")
    func enclosingCheckout() throws {
        let folder = TemporaryDirectory("checkout")
        let checkout = folder.child("swift-durable-objects")
        try FileManager.default.createDirectory(atPath: checkout + "/.build/debug", withIntermediateDirectories: true)
        try #"let package = Package(name: "swift-durable-objects")"#.write(
            toFile: checkout + "/Package.swift", atomically: true, encoding: .utf8)
        let executable = URL(fileURLWithPath: checkout + "/.build/debug/durable")
        #expect(Scaffold.enclosingCheckout(of: executable) == checkout)
        let elsewhere = folder.child("app")
        try FileManager.default.createDirectory(atPath: elsewhere + "/.build/debug", withIntermediateDirectories: true)
        try #"let package = Package(name: "app")"#.write(
            toFile: elsewhere + "/Package.swift", atomically: true, encoding: .utf8)
        #expect(Scaffold.enclosingCheckout(of: URL(fileURLWithPath: elsewhere + "/.build/debug/app")) == nil)
        #expect(Scaffold.enclosingCheckout(of: BuiltExecutable.durable) == repositoryRoot)
    }

    @Test("durable init writes a package: manifest, configuration, object, worker, main and a test")
    func scaffold() throws {
        let files = Scaffold.files(name: "hello-counter", dependency: .path("/src/swift-durable-objects"))
        #expect(
            Set(files.keys) == [
                "Package.swift", "durable.toml", "Sources/HelloCounterObjects/Counter.swift",
                "Sources/HelloCounterObjects/App.swift", "Sources/hello-counter/main.swift",
                "Tests/HelloCounterObjectsTests/CounterTests.swift", ".gitignore", "README.md",
            ])
        #expect(files["Package.swift"]!.contains(#".package(path: "/src/swift-durable-objects")"#))
        #expect(files["Package.swift"]!.contains(#"package: "swift-durable-objects")"#))
        let checkout = Scaffold.files(name: "x", dependency: .path("/work/Main"))["Package.swift"]!
        #expect(checkout.contains(#"package: "main")"#))
        #expect(files["Sources/hello-counter/main.swift"]!.contains("await application.main()"))
        let configuration = try ConfigurationParser.parse(files["durable.toml"]!)
        #expect(configuration.name == "hello-counter")
        #expect(configuration.migrations.map(\.newClasses) == [["Counter"]])
        let remote = Scaffold.files(name: "x", dependency: .url(Scaffold.defaultRepository))
        #expect(remote["Package.swift"]!.contains(#"branch: "main""#))
        #expect(Scaffold.isValidName("my_app-2"))
        #expect(!Scaffold.isValidName("2app") && !Scaffold.isValidName("a b") && !Scaffold.isValidName("../x"))
        let escape = refusal(InitCommand.self, ["../escape"])
        #expect(escape?.contains("'../escape' is not a package name") == true, "\(escape ?? "accepted")")
    }
}

/// The message a command line refuses `arguments` with, or nil when it accepts them.
func refusal<Command: ParsableCommand>(_ command: Command.Type, _ arguments: [String]) -> String? {
    do {
        _ = try Command.parse(arguments)
        return nil
    } catch {
        return Command.message(for: error)
    }
}

/// The repository this test belongs to.
private let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path
