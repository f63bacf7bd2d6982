import DurableObjects
import Foundation
import NIOCore
import NIOPosix

/// Where the process runs Swift tasks.
enum ConcurrencyExecutor {
    /// Makes SwiftNIO's event loops the executor of every Swift task in the process, unless the environment
    /// variable `DURABLE_EXECUTOR` is `dispatch`. A call then goes from the socket to the handler's task and back
    /// without waking another thread at each step, which matters most on small machines (the figures are in
    /// benchmarks/README.md). Objects' turns run there too: an object's executor drains on the event loop that
    /// delivered its call (or, from another thread, on the next loop), so a call's turn starts on the thread that
    /// read it. Must run before the process starts its work; later calls change nothing.
    static func installEventLoops() {
        guard ProcessInfo.processInfo.environment["DURABLE_EXECUTOR"] != "dispatch" else { return }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let loops = NIOSingletons.posixEventLoopGroup
        ObjectExecutor.drainScheduler = { drain in
            (MultiThreadedEventLoopGroup.currentEventLoop ?? loops.next()).execute(drain)
        }
    }
}
