import Foundation
import Testing
import WireTestSupport

/// Runs a command to completion off the cooperative pool; returns its exit status and its output (stdout and stderr).
func runCommand(_ executable: String, _ arguments: [String], in directory: String) async throws -> (Int32, String) {
    try await offPool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("durable-command-\(UUID()).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        try handle.close()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        try? FileManager.default.removeItem(at: log)
        return (process.terminationStatus, output)
    }
}

/// The repository this test belongs to.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

@Suite("A user's own app, made by durable init")
struct ScaffoldBuildTests {
    /// Building a second package compiles every dependency again (several minutes on two cores), so this runs when
    /// DURABLE_SCAFFOLD_BUILD=1, which CI sets.
    @Test(
        "durable init writes a package that builds, passes its test, and serves its worker with durable dev",
        .enabled(if: ProcessInfo.processInfo.environment["DURABLE_SCAFFOLD_BUILD"] == "1"),
        .timeLimit(.minutes(40)))
    func scaffoldBuildsAndServes() async throws {
        let folder = TemporaryDirectory("scaffold")
        let (initStatus, initOutput) = try await runCommand(
            DurableExecutable.url.path,
            ["init", "demo-app", "--directory", folder.path, "--durable-path", repositoryRoot],
            in: folder.path)
        #expect(initStatus == 0, "\(initOutput)")
        let package = folder.child("demo-app")
        print("building the scaffolded package in \(package) (all dependencies compile again; a few minutes)")
        let (buildStatus, buildOutput) = try await runCommand("swift", ["build"], in: package)
        #expect(buildStatus == 0, "\(buildOutput.suffix(4000))")
        guard buildStatus == 0 else { return }
        let (testStatus, testOutput) = try await runCommand("swift", ["test"], in: package)
        #expect(testStatus == 0, "\(testOutput.suffix(4000))")

        let dev = try await DevProcess.launch(
            ["--data", folder.child("data")], executable: URL(fileURLWithPath: package + "/.build/debug/demo-app"),
            directory: URL(fileURLWithPath: package))
        let answer = try await HTTPTestClient.send("http://127.0.0.1:\(dev.httpPort)/increment?name=B")
        #expect(answer.text == "Durable Object 'B' count: 1")
        #expect(try await dev.interrupt().status == 0)
    }
}
