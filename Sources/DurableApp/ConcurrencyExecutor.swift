import DurableObjects
import DurableWire
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
    ///
    /// `DURABLE_EVENT_LOOPS=N` sets how many event loops (threads) the process runs: by default one per core. Where
    /// several processes share few cores (a gateway, a node and a load generator on two), fewer loops per process
    /// mean fewer hand-offs between threads: the figures are in benchmarks/README.md.
    static func installEventLoops() {
        EventLoopCount.applyEnvironment()
        guard ProcessInfo.processInfo.environment["DURABLE_EXECUTOR"] != "dispatch" else { return }
        _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        let loops = NIOSingletons.posixEventLoopGroup
        ObjectExecutor.drainScheduler = { drain in
            (MultiThreadedEventLoopGroup.currentEventLoop ?? loops.next()).execute(drain)
        }
    }
}
