@_spi(Testing) import DurableObjects
import DurableStorage
import Foundation
import Logging
import Synchronization

/// An in-process durable-object runtime for testing your own object classes, on a temporary RocksDB database.
///
/// ```swift
/// let runtime = try DurableTestRuntime(classes: [DurableObjectClass(Counter.self)], bindings: ["COUNTER": "Counter"])
/// let stub = try runtime.namespace("COUNTER").getByName("a")
/// let response = try await stub.fetch("http://do/increment")
/// let stored = try await runtime.runInDurableObject(stub, as: Counter.self) { counter, state in
///     try await state.storage.get("value", as: Int.self)
/// }
/// ```
///
/// Everything is real: the storage engine, the group committer, the gates and the queues. ``restart()`` closes
/// the database and opens it again, as a process restart would; ``evict(_:)`` drops an instance from memory;
/// ``injectWriteFailure(_:count:)`` makes flushes fail.
public final class DurableTestRuntime: ObjectTransport, Sendable {
    /// The folder of the database.
    public let directory: String
    /// The classes served.
    public let classes: [DurableObjectClass]
    /// Binding name → class name.
    public let bindings: [String: String]
    /// The runtime configuration (short timeouts are useful in tests).
    public let configuration: RuntimeConfiguration

    private let ownsDirectory: Bool
    private let current: Mutex<ObjectRuntime?>
    private let logger: Logger

    /// Starts a runtime serving `classes` under `bindings` (binding name → class name). Each class's namespace id
    /// is the class name; its secret is kept in the database, so ids stay valid across ``restart()``.
    ///
    /// - Parameters:
    ///   - classes: the object classes to serve.
    ///   - bindings: binding name → class name, as `durable.toml` would bind them.
    ///   - configuration: how objects are run; short timeouts make eviction and queue limits quick to reach.
    ///   - directory: where the database lives; a fresh temporary folder (removed by ``close()``) when nil.
    ///   - logger: where the runtime and the objects log.
    public init(
        classes: [DurableObjectClass], bindings: [String: String],
        configuration: RuntimeConfiguration = RuntimeConfiguration(), directory: String? = nil,
        logger: Logger = Logger(label: "durable.testing")
    ) throws {
        self.classes = classes
        self.bindings = bindings
        self.configuration = configuration
        self.logger = logger
        if let directory {
            self.directory = directory
            self.ownsDirectory = false
        } else {
            self.directory =
                FileManager.default.temporaryDirectory
                .appendingPathComponent("durable-test-runtime-\(UUID().uuidString)").path
            self.ownsDirectory = true
        }
        current = Mutex(nil)
        try open()
    }

    private func open() throws {
        let database = try Database(path: directory)
        let runtime = ObjectRuntime(database: database, configuration: configuration, logger: logger)
        let meta = try database.defaultColumnFamily
        for objectClass in classes { runtime.register(objectClass) }
        for className in Set(bindings.values) {
            let secretKey = Array("\(NodeKeyspace.testRuntime)namespace-secret/\(className)".utf8)
            let secret: [UInt8]
            if let stored = try database.get(secretKey, in: meta) {
                secret = stored
            } else {
                secret = NamespaceKey.random().secret
                var batch = WriteBatch()
                batch.put(secret, forKey: secretKey, in: meta)
                try database.write(batch, sync: true)
            }
            try runtime.defineNamespace(
                NamespaceDefinition(id: className, className: className, key: NamespaceKey(secret: secret)))
        }
        try runtime.setEnvironment(bindings: bindings, transport: self)
        current.withLock { $0 = runtime }
    }

    /// The runtime running now (a new one after each ``restart()``).
    public var runtime: ObjectRuntime {
        get throws {
            guard let runtime = current.withLock({ $0 }) else {
                throw DurableObjectError(.unavailable, "The test runtime is closed.")
            }
            return runtime
        }
    }

    /// The environment objects and tests see: every binding. Its stubs survive ``restart()``.
    public var env: Environment {
        get throws { try runtime.environment }
    }

    /// The namespace bound as `binding`.
    public func namespace(_ binding: String) throws -> DurableObjectNamespace {
        try env.namespace(binding)
    }

    /// Delivers a request to the current runtime (stubs from ``env`` call this).
    public func invoke(namespaceID: String, id: DurableObjectId, request: Request) async throws -> Response {
        try await runtime.invoke(namespaceID: namespaceID, id: id, request: request)
    }

    /// Runs `body` inside the object behind `stub`, as an event of its own (the queue and gates apply), with the
    /// instance and its state, and returns what it returns.
    public func runInDurableObject<Object: DurableObject, Value: Sendable>(
        _ stub: DurableObjectStub, as type: Object.Type = Object.self,
        _ body: @escaping @Sendable (isolated Object, DurableObjectState) async throws -> Value
    ) async throws -> Value {
        try await runtime.run(in: stub.namespace.namespaceID, id: stub.id, as: Object.self) { object in
            try await body(object, object.state)
        }
    }

    /// Runs the alarm of the object behind `stub` now, if one is set, instead of waiting for its time. Returns
    /// whether an alarm ran; a handler that throws rethrows here, and the alarm stays set.
    @discardableResult
    public func runDurableObjectAlarm(_ stub: DurableObjectStub) async throws -> Bool {
        try await runtime.runAlarmNow(namespaceID: stub.namespace.namespaceID, id: stub.id)
    }

    /// The ids of the namespace's objects that have stored data.
    public func listDurableObjectIds(_ namespace: DurableObjectNamespace) throws -> [DurableObjectId] {
        try runtime.objectIDs(inNamespace: namespace.namespaceID)
    }

    /// Evicts the object from memory if it is idle; the next request runs its initializer again. Returns whether
    /// it was evicted.
    @discardableResult
    public func evict(_ stub: DurableObjectStub) throws -> Bool {
        try runtime.evict(namespaceID: stub.namespace.namespaceID, id: stub.id)
    }

    /// Whether the object has a live instance.
    public func isActive(_ stub: DurableObjectStub) throws -> Bool {
        try runtime.isActive(namespaceID: stub.namespace.namespaceID, id: stub.id)
    }

    /// Requests waiting in the object's queue.
    public func queuedCount(_ stub: DurableObjectStub) throws -> Int {
        try runtime.queuedCount(namespaceID: stub.namespace.namespaceID, id: stub.id)
    }

    /// Makes the object's next `count` flushes fail before they reach the disk (the object is reset each time).
    public func injectWriteFailure(_ stub: DurableObjectStub, count: Int = 1) throws {
        try runtime.faults.failNextWrites(namespaceID: stub.namespace.namespaceID, id: stub.id, count: count)
    }

    /// Holds every storage read that goes to RocksDB until the gate is opened.
    public func holdStorageReads() throws -> FaultGate {
        try runtime.faults.holdReads()
    }

    /// Holds every flush of the runtime until the gate is opened: nothing becomes durable meanwhile.
    public func holdStorageWrites() throws -> FaultGate {
        try runtime.faults.holdWrites()
    }

    /// Shuts the runtime down (writes made durable, objects evicted), closes the database, and opens both again
    /// on the same folder, as a process restart would.
    public func restart() async throws {
        await stopCurrent()
        try open()
    }

    /// Shuts down and closes the database; removes the folder when the runtime made it.
    public func close() async {
        await stopCurrent()
        if ownsDirectory { try? FileManager.default.removeItem(atPath: directory) }
    }

    /// Shuts the current runtime down and closes its database.
    private func stopCurrent() async {
        let old = current.withLock { runtime -> ObjectRuntime? in
            defer { runtime = nil }
            return runtime
        }
        if let old {
            await old.shutdown()
            old.database.close()
        }
    }
}
