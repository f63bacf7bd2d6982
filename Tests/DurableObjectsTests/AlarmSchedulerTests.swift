import DurableObjectsTesting
import TestSupport
import Testing

@testable import DurableObjects

@Suite("The alarm scheduler's timer loop")
struct AlarmSchedulerTests {
    static func key(_ number: Int) -> AlarmScheduler.Key {
        AlarmScheduler.Key(namespaceID: "ns", id: [UInt8(number >> 8), UInt8(number & 0xFF)])
    }

    @Test("a thousand alarms wait in one sleep; each fires once at its time; cancelled and replaced ones do not")
    func oneLoop() async throws {
        let clock = ManualRuntimeClock()
        let fired = Recorder<(Int, Int64)>()
        let scheduler = AlarmScheduler(clock: clock) { delivery in
            fired.append((Int(delivery.key.id[0]) << 8 | Int(delivery.key.id[1]), delivery.scheduledTime))
        }
        let start = clock.epochMilliseconds
        for number in 0..<1_000 { scheduler.set(Self.key(number), at: start + 1_000 + Int64(number)) }
        #expect(await eventually { clock.sleeperCount == 1 }, "one timer for every alarm")
        scheduler.cancel(Self.key(10))
        scheduler.set(Self.key(20), at: start + 5_000)  // moved later
        scheduler.set(Self.key(999), at: start + 500)  // moved earlier: the loop wakes for it
        #expect(await eventually { clock.sleeperCount == 1 })

        clock.advance(by: .milliseconds(600))
        #expect(await eventually { fired.values.count == 1 })
        #expect(fired.values.map(\.0) == [999])

        clock.advance(by: .milliseconds(1_000))  // start + 1,600: alarms 0…600 are due
        let firstWave = Set(0...600).subtracting([10, 20])
        #expect(await eventually { fired.values.count == 1 + firstWave.count })
        clock.advance(by: .seconds(10))
        let all = Set(0..<1_000).subtracting([10])
        #expect(await eventually { fired.values.count == all.count })
        #expect(Set(fired.values.map(\.0)) == all)
        #expect(fired.values.count == Set(fired.values.map(\.0)).count, "each alarm fired once")
        #expect(fired.values.first { $0.0 == 20 }?.1 == start + 5_000, "the replaced time, not the first")
        #expect(scheduler.scheduledCount == 0)
        scheduler.stop()
        #expect(await eventually { clock.sleeperCount == 0 }, "the loop ends when the scheduler stops")
    }
}
