import Foundation
import NIOCore

/// How many event loops (threads) a process of this project runs: by default one per core, or what the environment
/// variable `DURABLE_EVENT_LOOPS` says. Where several processes share few cores (a gateway, a node and a load
/// generator on two), fewer loops per process mean fewer hand-offs between threads.
public enum EventLoopCount {
    /// Applies `DURABLE_EVENT_LOOPS` (a positive integer) to SwiftNIO's shared event loop group. Must run before
    /// anything uses that group; later calls change nothing.
    public static func applyEnvironment() {
        if let text = ProcessInfo.processInfo.environment["DURABLE_EVENT_LOOPS"], let count = Int(text), count > 0 {
            NIOSingletons.groupLoopCountSuggestion = count
        }
    }
}
