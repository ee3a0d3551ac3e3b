#if canImport(Glibc)
    import Glibc
#endif

/// When to hand freed memory back to the system: after the open connections have fallen to half of their peak
/// since the last trim, by at least 1,000, once the closed connections' last events are handled (or 5 checks
/// later under continuous load). glibc keeps what a burst of connections freed in its arenas, so RSS stayed at the
/// peak's level after they closed (10,000 connections come and gone: 5 MiB of heap in use, 109 MiB of RSS) and
/// stepped up by several MiB at random later rounds; `malloc_trim` returns those pages. A trim while the
/// disconnections were still being posted returned too little: what they freed afterwards stayed.
struct MemoryTrimPolicy {
    /// The most connections open since the last trim.
    private(set) var peak = 0
    /// A drop was seen and the trim waits for the work under way to end.
    private(set) var due = false
    private var waited = 0
    /// The fewest connections whose closing is worth a trim.
    let minimumDrop: Int
    /// Checks a due trim waits for `busy` to end.
    let patience: Int

    init(minimumDrop: Int = 1000, patience: Int = 5) {
        self.minimumDrop = minimumDrop
        self.patience = patience
    }

    /// Whether to trim now, with `connections` open, at most `recentPeak` open since the last check, and `busy`
    /// when events of connections are still being handled.
    mutating func shouldTrim(connections: Int, recentPeak: Int, busy: Bool) -> Bool {
        peak = max(peak, recentPeak, connections)
        if peak - connections >= minimumDrop, connections <= peak / 2 {
            peak = connections
            due = true
            waited = 0
        }
        guard due else { return false }
        if busy && waited < patience {
            waited += 1
            return false
        }
        due = false
        return true
    }

    /// Returns the free pages of every malloc arena to the system (glibc's `malloc_trim(0)`); does nothing where
    /// the C library has no such function.
    static func trim() {
        #if canImport(Glibc)
            // Not exported by Swift's Glibc module: found at run time.
            guard let symbol = dlsym(nil, "malloc_trim") else { return }
            let function = unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
            _ = function(0)
        #endif
    }
}
