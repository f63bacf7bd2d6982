import DurableStorage
import Foundation
import Synchronization

/// Faults a test can inject into a runtime: failed storage writes and held storage reads.
public final class FaultInjector: Sendable {
    private struct Key: Hashable {
        var namespaceID: String
        var id: [UInt8]
    }

    private let failingWrites = Mutex<[Key: Int]>([:])
    private let readGate = Mutex<FaultGate?>(nil)
    private let writeGate = Mutex<FaultGate?>(nil)

    init() {}

    /// Makes the next `count` flushes of the object fail before they reach the disk.
    public func failNextWrites(namespaceID: String, id: DurableObjectId, count: Int = 1) {
        failingWrites.withLock { $0[Key(namespaceID: namespaceID, id: id.bytes), default: 0] += count }
    }

    func checkWrite(namespaceID: String, id: DurableObjectId) throws {
        let fail = failingWrites.withLock { faults -> Bool in
            let key = Key(namespaceID: namespaceID, id: id.bytes)
            guard let remaining = faults[key], remaining > 0 else { return false }
            faults[key] = remaining > 1 ? remaining - 1 : nil
            return true
        }
        if fail { throw StorageError(.writeRejected, "injected storage write failure") }
        writeGate.withLock { $0 }?.pass()
    }

    /// Holds every flush (on the commit thread, so all writes of the node wait) until the returned gate is opened.
    public func holdWrites() -> FaultGate {
        let gate = FaultGate()
        writeGate.withLock { $0 = gate }
        return gate
    }

    /// Holds every storage read that goes to RocksDB until the returned gate is opened.
    /// The gate also tells how many reads are being held.
    public func holdReads() -> FaultGate {
        let gate = FaultGate()
        readGate.withLock { $0 = gate }
        return gate
    }

    var readHook: @Sendable () -> Void {
        { [self] in readGate.withLock { $0 }?.pass() }
    }

}

/// A gate that holds the threads that reach it until it is opened.
public final class FaultGate: Sendable {
    private let state = Mutex<(open: Bool, held: Int)>((false, 0))
    private let condition = ConditionBox()

    /// How many reads are waiting at the gate now.
    public var heldCount: Int { state.withLock { $0.held } }

    /// Lets every held and future read through.
    public func open() {
        state.withLock { $0.open = true }
        condition.broadcast()
    }

    func pass() {
        let mustWait = state.withLock { state -> Bool in
            if state.open { return false }
            state.held += 1
            return true
        }
        guard mustWait else { return }
        condition.wait { self.state.withLock { $0.open } }
        state.withLock { $0.held -= 1 }
    }
}

/// A condition variable.
final class ConditionBox: @unchecked Sendable {
    private let condition = NSCondition()

    func wait(until done: () -> Bool) {
        condition.lock()
        while !done() { condition.wait() }
        condition.unlock()
    }

    func broadcast() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }
}
