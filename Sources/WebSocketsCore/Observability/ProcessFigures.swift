import WebSocketsProtocol

#if canImport(Glibc)
    import CEpoll
    import Glibc
#endif

/// What the process holds, as the kernel and the allocator count it: `/metrics` shows it so that an operator (and
/// the soak benchmark) can tell memory the server uses (`heapInUse`) from memory the allocator keeps free for
/// later (the rest of `resident`), and see descriptors leak.
package struct ProcessFigures: Sendable, Equatable {
    /// Resident memory, bytes.
    package var resident: Int
    /// Bytes the allocator has handed out and not had back (glibc's `mallinfo2`: arenas and mapped blocks); `nil`
    /// where the C library does not tell.
    var heapInUse: Int?
    /// Open file descriptors (0 when not counted).
    var openDescriptors: Int

    /// The figures now; zero where the system does not tell (no `/proc`). Counting descriptors reads a directory
    /// with an entry per connection: only `/metrics` asks for it.
    package static func current(countingDescriptors: Bool = true) -> ProcessFigures {
        ProcessFigures(
            resident: residentBytes(), heapInUse: heapBytes(),
            openDescriptors: countingDescriptors ? descriptorCount() : 0)
    }

    /// The second field of `/proc/self/statm` (pages) in bytes.
    private static func residentBytes() -> Int {
        #if canImport(Glibc)
            let descriptor = open("/proc/self/statm", O_RDONLY)
            guard descriptor >= 0 else { return 0 }
            defer { close(descriptor) }
            var bytes = [UInt8](repeating: 0, count: 128)
            let count = bytes.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            guard count > 0 else { return 0 }
            let fields = bytes[..<count].split(separator: UInt8(ascii: " "))
            guard fields.count > 1, let pages = Int(String(decoding: fields[1], as: UTF8.self)) else { return 0 }
            return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
        #else
            return 0
        #endif
    }

    private static func heapBytes() -> Int? {
        #if canImport(Glibc)
            let info = mallinfo2()
            return Int(info.uordblks) + Int(info.hblkhd)
        #else
            return nil
        #endif
    }

    /// The entries of `/proc/self/fd` but `.`, `..` and the directory's own descriptor.
    private static func descriptorCount() -> Int {
        #if canImport(Glibc)
            guard let directory = opendir("/proc/self/fd") else { return 0 }
            defer { closedir(directory) }
            var count = 0
            while let entry = readdir(directory) {
                let isDot = withUnsafeBytes(of: entry.pointee.d_name) { $0.first == UInt8(ascii: ".") }
                if !isDot { count += 1 }
            }
            return max(0, count - 1)
        #else
            return 0
        #endif
    }
}
