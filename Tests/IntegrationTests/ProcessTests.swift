import Testing

/// Every suite of this target is nested in this one, which runs its tests one at a time (`.serialized` reaches the
/// nested suites) while the in-process tests of the other targets run in parallel beside them: two cores cannot
/// start and serve several clusters of real processes at once without starving every timed wait in the suite.
///
/// Each test has five minutes; when the limit passes, the test is cancelled, and its child processes are killed as
/// their ``ChildProcess`` objects go (and any left at all when the test process exits).
@Suite("Real processes, one test at a time", .serialized, .timeLimit(.minutes(5)))
enum ProcessTests {}
