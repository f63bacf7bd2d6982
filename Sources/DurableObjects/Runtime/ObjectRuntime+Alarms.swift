import DurableStorage
import Foundation
import Logging

/// Alarms (<doc:Semantics#Alarms>): kept in the node's metadata, scheduled in memory, delivered as events.
extension ObjectRuntime {
    /// A flush set or removed the alarm of an object.
    func alarmChanged(namespaceID: String, id: DurableObjectId, to time: Int64?) {
        alarms.set(AlarmScheduler.Key(namespaceID: namespaceID, id: id.bytes), at: time)
    }

    /// The time the object's alarm is scheduled for, as the scheduler holds it (`nil` while it is being delivered
    /// or when none is set).
    @_spi(Testing) public func scheduledAlarm(namespaceID: String, id: DurableObjectId) -> Date? {
        alarms.scheduledTime(of: AlarmScheduler.Key(namespaceID: namespaceID, id: id.bytes))
            .map { Date(timeIntervalSince1970: Double($0) / 1_000) }
    }

    /// How many alarms wait for their time in this runtime.
    @_spi(Testing) public var scheduledAlarmCount: Int { alarms.scheduledCount }

    /// Schedules the alarms stored for the namespace (after a restart, overdue ones run at once).
    func loadAlarms(ofNamespace namespaceID: String) {
        let prefix = AlarmRecord.namespacePrefix(namespaceID)
        do {
            var loaded = 0
            for entry in try database.scan(in: database.defaultColumnFamily, ScanOptions(prefix: prefix)) {
                let hex = String(decoding: entry.key.dropFirst(prefix.count), as: UTF8.self)
                guard let id = NamespaceKey.parseHex(hex), let time = AlarmRecord.decode(entry.value) else {
                    logger.warning("ignoring a malformed alarm record", metadata: ["key": "\(hex)"])
                    continue
                }
                alarms.load(AlarmScheduler.Key(namespaceID: namespaceID, id: id), at: time)
                loaded += 1
            }
            if loaded > 0 {
                logger.info("scheduled stored alarms", metadata: ["namespace": "\(namespaceID)", "count": "\(loaded)"])
            }
        } catch {
            logger.error("could not load the namespace's alarms: \(error)", metadata: ["namespace": "\(namespaceID)"])
        }
    }

    /// Deletes the stored alarms of a namespace that is dropped.
    func deleteAlarmRecords(ofNamespace namespaceID: String) throws {
        let prefix = AlarmRecord.namespacePrefix(namespaceID)
        guard let end = KeyBytes.successor(ofPrefix: prefix) else { return }
        var batch = WriteBatch()
        batch.deleteRange(from: prefix, to: end, in: try database.defaultColumnFamily)
        try database.write(batch, sync: true)
    }

    /// Delivers a due alarm to its object, and schedules a retry (2 s doubling, by default) when the handler
    /// throws; after the last retry the alarm is dropped.
    func deliverAlarm(_ delivery: AlarmScheduler.Delivery) async {
        let key = delivery.key
        let id = DurableObjectId(bytes: key.id, name: nil)
        // A slot handed to another node fires its alarms there (they moved with its rows), or here again if the
        // move is undone (its alarms are scheduled anew then).
        guard !placement.isRetired(PlacementEpochs.slot(of: id)) else { return }
        var metadata: Logger.Metadata = [
            "namespace": "\(key.namespaceID)", "id": "\(id.hexString.prefix(16))",
            "retry": "\(delivery.retryCount)",
        ]
        let metrics = namespaceMetrics(key.namespaceID)
        let info = AlarmInfo(
            retryCount: delivery.retryCount,
            scheduledTime: Date(timeIntervalSince1970: Double(delivery.scheduledTime) / 1_000))
        do {
            let result = try await deliver(.alarm(info), namespaceID: key.namespaceID, id: id)
            if case .value(let ran as Bool) = result, !ran {
                logger.warning("dropping an alarm: the object's class has no alarm() handler", metadata: metadata)
                metrics?.recordAlarm(.dropped)
                await dropAlarm(key, setFor: delivery.scheduledTime)
                return
            }
            logger.debug("alarm ran", metadata: metadata)
            metrics?.recordAlarm(.ok)
        } catch let error as DurableObjectError
            where error.code == .notFound || isStopped || placement.isRetired(PlacementEpochs.slot(of: id))
        {
            logger.debug("alarm not delivered: \(error)", metadata: metadata)
        } catch {
            metadata["error"] = "\(error)"
            let retry = delivery.retryCount + 1
            guard retry <= configuration.alarmRetry.maximumRetries else {
                logger.error("alarm handler failed on its last retry; dropping the alarm", metadata: metadata)
                metrics?.recordAlarm(.dropped)
                await dropAlarm(key, setFor: delivery.scheduledTime)
                return
            }
            let delay = configuration.alarmRetry.delay(beforeRetry: retry)
            logger.warning("alarm handler failed; retrying in \(delay)", metadata: metadata)
            metrics?.recordAlarm(.retried)
            alarms.retry(key, scheduledTime: delivery.scheduledTime, retryCount: retry, after: delay)
        }
    }

    /// Removes the object's alarm if it is still the one that was set for `time` (a newer one stays).
    private func dropAlarm(_ key: AlarmScheduler.Key, setFor time: Int64) async {
        let event = ObjectEvent.run { object in
            let engine = object.state.storage.engine
            if try engine.readAlarm(inTransaction: false) == time {
                try engine.writeAlarm(nil, unconfirmed: false, inTransaction: false)
            }
            return true
        }
        do {
            _ = try await deliver(event, namespaceID: key.namespaceID, id: DurableObjectId(bytes: key.id, name: nil))
        } catch {
            logger.warning("could not drop the alarm: \(error)")
        }
    }
}

extension ObjectRuntime {
    /// Runs the object's alarm now, if one is set, instead of at its time (for tests). Returns whether an alarm
    /// ran. When the handler throws, the error is rethrown and the alarm stays scheduled at its time.
    @_spi(Testing) public func runAlarmNow(namespaceID: String, id: DurableObjectId) async throws -> Bool {
        let key = AlarmScheduler.Key(namespaceID: namespaceID, id: id.bytes)
        let read = ObjectEvent.run { object in
            try object.state.storage.engine.readAlarm(inTransaction: false) ?? -1
        }
        guard case .value(let stored as Int64) = try await deliver(read, namespaceID: namespaceID, id: id), stored > 0
        else { return false }
        alarms.cancel(key)
        let info = AlarmInfo(retryCount: 0, scheduledTime: Date(timeIntervalSince1970: Double(stored) / 1_000))
        do {
            guard case .value(let ran as Bool) = try await deliver(.alarm(info), namespaceID: namespaceID, id: id)
            else { return false }
            return ran
        } catch {
            alarms.load(key, at: stored)
            throw error
        }
    }
}
