import Logging
import Synchronization

/// A key that exists for as long as its holder lives: written under an etcd lease that ``run()`` keeps alive (a
/// renewal every third of the TTL), so the key disappears about one TTL after the holder dies, stops renewing or
/// loses etcd. This is how nodes and gateways say they are alive.
///
/// A lease that expired anyway (the holder was paused, or etcd was out of reach for longer than the TTL) is replaced
/// by a new one and the key written again, and the loss is logged: whoever watched the key saw it go and come back.
public final class LeasedKey: Sendable {
    /// The key.
    public let key: [UInt8]
    /// The lease's time to live, in seconds.
    public let ttl: Int
    private let client: EtcdClient
    private let value: Mutex<[UInt8]>
    private let logger: Logger
    private let lease = Mutex<Int64?>(nil)
    private let renewalCount = Atomic<Int>(0)
    private let conditions: [Transaction.Comparison]
    private let confirmed = Mutex<ContinuousClock.Instant?>(nil)
    private let refused = Mutex<Bool>(false)

    /// A key to hold under a lease of `ttl` seconds (at least 2: etcd's shortest); nothing is written before
    /// ``acquire()`` or ``run()``.
    ///
    /// With `conditions`, the key is written (at first, and again after a lost lease) only while they hold, in one
    /// transaction; once they fail, ``acquire()`` throws ``LeasedKeyError/conditionFailed`` and ``run()`` ends.
    public init(
        client: EtcdClient, key: [UInt8], value: [UInt8], ttl: Int, conditions: [Transaction.Comparison] = [],
        logger: Logger
    ) {
        self.conditions = conditions
        self.client = client
        self.key = key
        self.value = Mutex(value)
        self.ttl = max(ttl, 2)
        self.logger = logger
    }

    /// How many times ``run()`` renewed the lease.
    public var renewals: Int { renewalCount.load(ordering: .relaxed) }

    /// The lease the key is held under now, once acquired.
    public var currentLease: Int64? { lease.withLock { $0 } }

    /// Grants a lease and writes the key under it.
    ///
    /// - Throws: ``EtcdError`` when etcd cannot be reached.
    public func acquire() async throws {
        let sent = ContinuousClock.now
        let (id, _) = try await client.grantLease(ttl: ttl)
        if conditions.isEmpty {
            try await client.put(key, value.withLock { $0 }, lease: id)
        } else {
            let result = try await client.transaction(
                Transaction(comparisons: conditions, success: [.put(key: key, value: value.withLock { $0 }, lease: id)])
            )
            guard result.succeeded else {
                try? await client.revoke(lease: id)
                refused.withLock { $0 = true }
                throw LeasedKeyError.conditionFailed(String(decoding: key, as: UTF8.self))
            }
        }
        lease.withLock { $0 = id }
        confirmed.withLock { $0 = sent + .seconds(ttl) }
    }

    /// Until when the key is known to exist: the time the last successful grant or renewal was sent, plus the TTL
    /// (etcd counts the TTL from when it received it, later). `nil` before the first.
    public var confirmedUntil: ContinuousClock.Instant? { confirmed.withLock { $0 } }

    /// Whether the conditions failed: the key is not held and will not be.
    public var conditionFailed: Bool { refused.withLock { $0 } }

    /// Writes a new value under the current lease (the load a member reports, say).
    public func update(_ newValue: [UInt8]) async throws {
        value.withLock { $0 = newValue }
        guard let id = currentLease else { return }
        try await client.put(key, newValue, lease: id)
    }

    /// Holds the key until the task is cancelled: acquires it (unless ``acquire()`` did), renews the lease every
    /// third of the TTL, acquires it again when it was lost, and revokes it at the end (the key goes at once).
    /// Failures to reach etcd are logged and retried; they never end the loop.
    public func run() async {
        let period = Duration.milliseconds(ttl * 1000 / 3)
        while !Task.isCancelled {
            do {
                if let id = currentLease {
                    let sent = ContinuousClock.now
                    if try await client.keepAlive(lease: id) <= 0 {
                        logger.warning(
                            "the lease of a live key expired; acquiring a new one",
                            metadata: ["key": "\(String(decoding: key, as: UTF8.self))"])
                        lease.withLock { $0 = nil }
                        continue
                    }
                    renewalCount.add(1, ordering: .relaxed)
                    logger.trace("lease renewed", metadata: ["key": "\(String(decoding: key, as: UTF8.self))"])
                    confirmed.withLock { $0 = sent + .seconds(ttl) }
                } else {
                    try await acquire()
                }
            } catch LeasedKeyError.conditionFailed(let key) {
                logger.warning(
                    "a live key's condition no longer holds; it is not held any more", metadata: ["key": "\(key)"])
                return
            } catch {
                if Task.isCancelled { break }
                logger.notice(
                    "could not renew a live key's lease",
                    metadata: ["key": "\(String(decoding: key, as: UTF8.self))", "error": "\(error)"])
            }
            try? await Task.sleep(for: period)
        }
        logger.info(
            "live key released",
            metadata: ["key": "\(String(decoding: key, as: UTF8.self))", "cancelled": "\(Task.isCancelled)"])
        if let id = lease.withLock({ $0 }) {
            // The caller's task is cancelled: the revoke runs in a task of its own.
            await Task { try? await client.revoke(lease: id) }.value
            lease.withLock { $0 = nil }
        }
    }
}

/// Why a ``LeasedKey`` is not held.
public enum LeasedKeyError: Error, CustomStringConvertible {
    /// The key's conditions did not hold when it was to be written.
    case conditionFailed(String)

    /// The reason in words.
    public var description: String {
        switch self {
        case .conditionFailed(let key): "the conditions of live key \(key) no longer hold"
        }
    }
}
