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
struct MemoryTrimPolicy {
    /// Resident minus in use right after the last trim (or at the first check): what the process holds besides its
    /// heap when nothing freed is kept (code, stacks, the allocator's own pages).
    private(set) var baseline: Int?
    /// A trim was decided and its figures are not back yet.
    private(set) var trimming = false
    private var waited = 0
    /// The least growth, in bytes, worth a trim.
    let minimumGain: Int
    /// Checks a due trim waits for `busy` to end.
    let patience: Int

    init(minimumGain: Int = 8 << 20, patience: Int = 5) {
        self.minimumGain = minimumGain
        self.patience = patience
    }

    /// Whether to trim now, with `resident` bytes in memory of which `heapInUse` are the allocator's in use, and
    /// `busy` while events of connections are still being handled.
    mutating func shouldTrim(resident: Int, heapInUse: Int, busy: Bool) -> Bool {
        guard !trimming else { return false }
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
