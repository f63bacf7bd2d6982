import Foundation
import Testing

/// How the suite is split into passes (Tests/README.md tells the whole story).
///
/// - The **main pass** (`swift test --skip HeavyTests`) runs the in-process tests in parallel and the tests that start
///   processes (Tests/IntegrationTests, all nested in one serialized suite) one at a time beside them.
/// - The **heavy pass** runs the tests that load the whole machine (many processes, floods, fuzzing servers, the
///   load generator, a browser), one at a time and alone. They live in the `HeavyTests` target: that is the one
///   rule, read by the Makefile (`--filter HeavyTests`) and by ``Trait/heavy``, which every suite there carries.
public enum TestPass {
    /// The variable that enables the heavy pass.
    public static let heavyVariable = "DURABLE_HEAVY_TESTS"

    /// Whether this run includes the heavy tests (`DURABLE_HEAVY_TESTS=1`, as `make test` sets for its heavy pass).
    public static var heavyEnabled: Bool { ProcessInfo.processInfo.environment[heavyVariable] == "1" }
}

extension Trait where Self == ConditionTrait {
    /// Marks a suite of the heavy pass: it runs only when ``TestPass/heavyEnabled``, and a plain `swift test` says
    /// it skipped it and how to run it.
    public static var heavy: Self {
        .enabled(
            if: TestPass.heavyEnabled,
            "loads the whole machine: runs in the heavy pass (make test, or DURABLE_HEAVY_TESTS=1 swift test --filter HeavyTests)"
        )
    }
}
