import Foundation
import TestSupport
import Testing

@testable import DurableObjects

@Suite("The mailbox: bounds, order, expiry and its invariants")
struct MailboxTests {
    static let start = ContinuousClock.now

    static func limits(requests: Int = 3, bytes: Int = 100, age: Duration = .seconds(10)) -> MailboxLimits {
        MailboxLimits(maxQueuedRequests: requests, maxQueuedBytes: bytes, maxQueueAge: age)
    }

    /// A mailbox whose start-up is done (the gate open).
    static func open(_ limits: MailboxLimits = limits()) -> Mailbox<String> {
        var mailbox = Mailbox<String>(limits: limits)
        mailbox.openGate()
        return mailbox
    }

    @Test("the count and byte bounds refuse the event that would pass them, with the platform's errors")
    func bounds() throws {
        var mailbox = Self.open()
        for name in ["a", "b", "c"] { _ = try mailbox.admit(name, bytes: 10, deadline: nil, now: Self.start) }
        #expect(throws: DurableObjectError.tooManyRequestsQueued) {
            _ = try mailbox.admit("d", bytes: 0, deadline: nil, now: Self.start)
        }
        var bytes = Self.open()
        _ = try bytes.admit("big", bytes: 90, deadline: nil, now: Self.start)
        #expect(throws: DurableObjectError.tooMuchDataQueued) {
            _ = try bytes.admit("too much", bytes: 11, deadline: nil, now: Self.start)
        }
        _ = try bytes.admit("fits", bytes: 10, deadline: nil, now: Self.start)
        #expect(bytes.queuedBytes == 100)
        #expect(mailbox.violatedInvariant == nil && bytes.violatedInvariant == nil)
    }

    @Test("events leave one at a time, in arrival order, only when the gate is open and the executor idle")
    func order() throws {
        var mailbox = Mailbox<String>(limits: Self.limits())
        for name in ["a", "b"] { _ = try mailbox.admit(name, bytes: 1, deadline: nil, now: Self.start) }
        #expect(!mailbox.canDeliver(executorIdle: true), "the start-up holds the gate")
        mailbox.openGate()
        #expect(!mailbox.canDeliver(executorIdle: false))
        #expect(mailbox.canDeliver(executorIdle: true))
        let first = mailbox.takeNext(now: Self.start, realNow: Self.start)
        #expect(first.map(\.0.item) == ["a"] && first.map(\.1) == [.deliver])
        #expect(!mailbox.canDeliver(executorIdle: true), "a delivered event must start before the next leaves")
        mailbox.eventStarted()
        mailbox.closeGate()
        #expect(!mailbox.canDeliver(executorIdle: true), "a transaction holds the gate")
        mailbox.openGate()
        #expect(mailbox.takeNext(now: Self.start, realNow: Self.start).map(\.0.item) == ["b"])
        #expect(mailbox.violatedInvariant == nil)
    }

    @Test("events past the age bound or their deadline come out refused on the way to the next one")
    func expiry() throws {
        var mailbox = Self.open()
        _ = try mailbox.admit("old", bytes: 5, deadline: nil, now: Self.start)
        _ = try mailbox.admit("late", bytes: 5, deadline: Self.start + .seconds(1), now: Self.start + .seconds(9))
        _ = try mailbox.admit("fine", bytes: 5, deadline: nil, now: Self.start + .seconds(9))
        let taken = mailbox.takeNext(now: Self.start + .seconds(11), realNow: Self.start + .seconds(2))
        #expect(taken.map(\.0.item) == ["old", "late", "fine"])
        #expect(taken.map(\.1) == [.expired, .deadlinePassed, .deliver])
        #expect(mailbox.inFlight == 1 && mailbox.queuedBytes == 0)
        #expect(mailbox.violatedInvariant == nil)
    }

    @Test("a withdrawn event leaves the queue and the counts; retiring empties it; idle means nothing at all")
    func withdrawAndRetire() throws {
        var mailbox = Self.open()
        let a = try mailbox.admit("a", bytes: 4, deadline: nil, now: Self.start)
        _ = try mailbox.admit("b", bytes: 6, deadline: nil, now: Self.start)
        #expect(mailbox.withdraw(a)?.item == "a")
        #expect(mailbox.withdraw(a) == nil)
        #expect(mailbox.queuedBytes == 6 && mailbox.inFlight == 1 && !mailbox.isIdle)
        #expect(mailbox.removeAll().map(\.item) == ["b"])
        #expect(mailbox.isIdle && mailbox.violatedInvariant == nil)
    }

    @Test("random admissions, withdrawals, deliveries and answers keep every invariant")
    func randomOperations() throws {
        var generator = SeededGenerator(seed: 17)
        var mailbox = Self.open(Self.limits(requests: 8, bytes: 64, age: .seconds(5)))
        var tickets: [UInt64] = []
        var running = 0
        var now = Self.start
        for _ in 0..<20_000 {
            now += .milliseconds(Int.random(in: 0...50, using: &generator))
            switch Int.random(in: 0..<6, using: &generator) {
            case 0, 1:
                if let ticket = try? mailbox.admit(
                    "e", bytes: Int.random(in: 0...16, using: &generator), deadline: nil, now: now)
                {
                    tickets.append(ticket)
                }
            case 2:
                if let ticket = tickets.randomElement(using: &generator) { _ = mailbox.withdraw(ticket) }
            case 3:
                guard mailbox.canDeliver(executorIdle: true) else { break }
                for (_, verdict) in mailbox.takeNext(now: now, realNow: now) where verdict == .deliver {
                    mailbox.eventStarted()
                    running += 1
                }
            case 4:
                if running > 0 {
                    running -= 1
                    mailbox.eventAnswered(now: now)
                }
            default:
                if Bool.random(using: &generator) {
                    mailbox.closeGate()
                } else if mailbox.gateHolds > 0 {
                    mailbox.openGate()
                }
            }
            if let broken = mailbox.violatedInvariant {
                Issue.record("invariant broken: \(broken)")
                return
            }
        }
    }
}
