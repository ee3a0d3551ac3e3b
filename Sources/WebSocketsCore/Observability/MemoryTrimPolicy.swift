import NIOConcurrencyHelpers

#if canImport(Glibc)
    import Glibc
#endif

/// When to hand freed memory back to the system, counted in bytes: once what the allocator keeps without using it
/// (resident memory minus the heap in use) has grown by `minimumGain`, or by an eighth of the heap when that is more,
/// since the last trim, and the work under way has ended (or `patience` checks later under continuous load).
///
/// glibc keeps what a burst freed in its arenas: 19,000 tabs authenticating against a site that receives the events
/// left RSS at 13.4–17.0 KiB per connection on 226b087, of which 6.6 KiB were in use (`malloc_trim` from a debugger
/// took RSS from 364 to 163 MiB); a burst of connections come and gone left 109 MiB of RSS for 5 MiB of heap. The
/// rule before this one counted connections (a trim after half of them closed), so a burst of events or messages
/// on connections that stayed open was never given back. A trim while the work was still under way returned too
/// little: what it freed afterwards stayed.
package struct MemoryTrimPolicy {
    /// Resident minus in use right after the last trim (or at the first check): what the process holds besides its
    /// heap when nothing freed is kept (code, stacks, the allocator's own pages).
    private(set) var baseline: Int?
    /// A trim was decided and its figures are not back yet.
    private(set) var trimming = false
    private var waited = 0
    /// Checks left before another trim may be decided.
    private var resting = 0
    /// The least growth, in bytes, worth a trim.
    let minimumGain: Int
    /// Checks a due trim waits for `busy` to end.
    let patience: Int
    /// Checks after a trim before the next: a trim walks every arena with its lock held, and a process whose heap
    /// churns (the test suite, forty servers in one process) would otherwise trim every few seconds.
    package let rest: Int

    package init(minimumGain: Int = 8 << 20, patience: Int = 5, rest: Int = 5) {
        self.minimumGain = minimumGain
        self.patience = patience
        self.rest = rest
    }

    /// The process's policy: the allocator is the process's, so the servers of one process (an application with
    /// two, the test suite with dozens) read its figures and trim once a second between them, not once each.
    package static let process = NIOLockedValueBox(ProcessState())

    /// The process's policy and when it last looked.
    package struct ProcessState: Sendable {
        var policy = MemoryTrimPolicy()
        var lastCheck: ContinuousClock.Instant?
    }

    /// Whether to trim now, for a server whose timer fired at `now` with `busy` work: reads the process's figures
    /// at most once a second whichever server asks.
    package static func checkProcess(busy: Bool, now: ContinuousClock.Instant = .now) -> Bool {
        let due = process.withLockedValue { state -> Bool in
            if let last = state.lastCheck, now - last < .milliseconds(900) { return false }
            state.lastCheck = now
            return true
        }
        guard due else { return false }
        let figures = ProcessFigures.current(countingDescriptors: false)
        guard let heap = figures.heapInUse else { return false }
        return process.withLockedValue {
            $0.policy.shouldTrim(resident: figures.resident, heapInUse: heap, busy: busy)
        }
    }

    /// Trims (off the caller's thread: it walks every arena, milliseconds with a large heap) and records the
    /// figures after it as the process's new floor; `done` gets the resident bytes before and after.
    package static func trimProcess(_ done: @escaping @Sendable (_ before: Int, _ after: Int) -> Void) {
        Task.detached(priority: .background) {
            let before = ProcessFigures.current(countingDescriptors: false)
            trim()
            let after = ProcessFigures.current(countingDescriptors: false)
            process.withLockedValue {
                $0.policy.trimmed(resident: after.resident, heapInUse: after.heapInUse ?? 0)
            }
            done(before.resident, after.resident)
        }
    }

    /// Whether to trim now, with `resident` bytes in memory of which `heapInUse` are the allocator's in use, and
    /// `busy` while events of connections are still being handled.
    mutating func shouldTrim(resident: Int, heapInUse: Int, busy: Bool) -> Bool {
        guard !trimming else { return false }
        if resting > 0 {
            resting -= 1
            return false
        }
        let kept = resident - heapInUse
        guard let baseline, kept > baseline else {
            // The first check, or the allocator gave memory back on its own: the new floor.
            baseline = kept
            waited = 0
            return false
        }
        guard kept - baseline >= max(minimumGain, heapInUse / 8) else {
            waited = 0
            return false
        }
        if busy && waited < patience {
            waited += 1
            return false
        }
        waited = 0
        trimming = true
        return true
    }

    /// The trim decided by ``shouldTrim(resident:heapInUse:busy:)`` is done; the figures after it are the new floor
    /// (what it could not give back is not asked for again).
    mutating func trimmed(resident: Int, heapInUse: Int) {
        trimming = false
        resting = rest
        baseline = resident - heapInUse
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
