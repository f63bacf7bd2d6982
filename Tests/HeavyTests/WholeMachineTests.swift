import TestSupport
import Testing

/// Every suite of the heavy pass but the scaffold build is nested in this one: they load the whole machine (clusters of
/// processes, floods, fuzzing a live server, the load generator, a browser), so they run only in the heavy pass
/// (``TestSupport/TestPass``), one at a time, after the main pass.
@Suite("Whole-machine tests, one at a time", .heavy, .serialized, .timeLimit(.minutes(10)))
enum WholeMachineTests {}
