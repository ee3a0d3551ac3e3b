import Foundation
import Testing

/// How long the tests wait for what must happen, as a multiple of their usual bounds, and whether they run under
/// a sanitizer (`Tests/sanitize.sh` sets both). A wait returns at its event; its bound only limits how long a
/// failure takes to be reported, so a slower build raises it without changing what any test asserts. Under
/// ThreadSanitizer the suites ran 5 to 10 times slower: a site's answer took over 5 s, a replay of 400 tabs over 10 s.
enum TestPatience {
    /// `WEBSOCKETS_TEST_PATIENCE`: 1 unless set.
    static let factor: Double =
        ProcessInfo.processInfo.environment["WEBSOCKETS_TEST_PATIENCE"].flatMap(Double.init).map { max(1, $0) } ?? 1

    /// `bound`, scaled by ``factor``.
    static func scaled(_ bound: Duration) -> Duration {
        bound * factor
    }

    /// Whether a sanitizer replaced the allocator and slowed every step (`WEBSOCKETS_TEST_SANITIZER` is set): the
    /// tests that measure the process's memory (resident, peak, the heap in use) do not run then, since the
    /// figures are the sanitizer's (its shadow memory, its allocator's statistics), not the server's.
    static let sanitized = ProcessInfo.processInfo.environment["WEBSOCKETS_TEST_SANITIZER"] != nil

    /// The reason given for a memory test that does not run under a sanitizer.
    static let memoryFiguresAreTheSanitizers: Comment =
        "measures the process's memory, which under a sanitizer is the sanitizer's"
}
