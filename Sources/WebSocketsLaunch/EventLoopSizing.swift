import Foundation
import NIOCore

#if os(Linux)
    import CLaunch
#endif

/// How many event loops the server runs: one per core it may run on.
public enum EventLoopSizing {
    /// The cores this process may run on (its CPU affinity: `taskset`, systemd's `CPUAffinity=`), or the machine's
    /// core count where that cannot be read.
    public static func usableCores() -> Int {
        #if os(Linux)
            // 1024 CPUs, glibc's cpu_set_t.
            var mask = [UInt8](repeating: 0, count: 128)
            if sched_getaffinity(0, mask.count, &mask) == 0 {
                let count = mask.reduce(0) { $0 + $1.nonzeroBitCount }
                if count > 0 { return count }
            }
        #endif
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Sizes SwiftNIO's shared event loop group to the usable cores, unless `NIO_SINGLETON_GROUP_LOOP_COUNT` says
    /// otherwise. NIO counts the machine's cores: a server pinned to one core would otherwise run two loops that
    /// take turns on it. Call it first thing in `main`, before anything uses the group.
    public static func sizeSharedGroup() {
        guard ProcessInfo.processInfo.environment["NIO_SINGLETON_GROUP_LOOP_COUNT"] == nil else { return }
        NIOSingletons.groupLoopCountSuggestion = usableCores()
    }
}
