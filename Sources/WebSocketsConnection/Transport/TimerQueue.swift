import WebSocketsCore

/// The timers of a ``SocketLoop``: which one is due next and how long the loop may sleep, with no thread or clock
/// of its own, so that it can be tested on deadlines alone.
///
/// A binary heap of deadlines beside a table of the timers still armed: a cancelled timer leaves the table at once
/// and its heap slot is skipped when it comes up, so cancelling costs no search of the heap.
package struct TimerQueue<Entry> {
    private struct Slot {
        var deadline: UInt64
        var id: UInt64
    }

    private var heap: [Slot] = []
    private var entries: [UInt64: Entry] = [:]

    /// How many timers are armed.
    package var count: Int { entries.count }

    /// Arms `entry` for `deadline` (uptime nanoseconds) under `id`, which must not be armed already.
    package mutating func insert(id: UInt64, deadline: UInt64, entry: Entry) {
        entries[id] = entry
        heap.append(Slot(deadline: deadline, id: id))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.precedes(heap[child], heap[parent]) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    /// Disarms the timer `id`; its entry, or `nil` when it had fired or was cancelled already.
    package mutating func remove(id: UInt64) -> Entry? {
        entries.removeValue(forKey: id)
    }

    /// The earliest deadline of an armed timer, or `nil` when none is armed.
    mutating func nextDeadline() -> UInt64? {
        dropDisarmed()
        return heap.first?.deadline
    }

    /// The entry of the earliest timer due at `now`, disarmed; `nil` when none is due. Timers with the same deadline
    /// come in the order they were armed.
    mutating func popDue(now: UInt64) -> Entry? {
        dropDisarmed()
        guard let top = heap.first, top.deadline <= now else { return nil }
        popTop()
        return entries.removeValue(forKey: top.id)
    }

    /// Every armed entry, disarmed (the loop's shutdown).
    package mutating func removeAll() -> [Entry] {
        defer {
            heap = []
            entries = [:]
        }
        return Array(entries.values)
    }

    private mutating func dropDisarmed() {
        while let top = heap.first, entries[top.id] == nil { popTop() }
        // A heap emptied of many cancelled timers lets its storage go.
        if heap.isEmpty && heap.capacity > 64 { heap = [] }
    }

    private mutating func popTop() {
        let last = heap.removeLast()
        guard !heap.isEmpty else { return }
        heap[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1
            guard left < heap.count else { break }
            var smallest = left
            if left + 1 < heap.count, Self.precedes(heap[left + 1], heap[left]) { smallest = left + 1 }
            guard Self.precedes(heap[smallest], heap[parent]) else { break }
            heap.swapAt(smallest, parent)
            parent = smallest
        }
    }

    private static func precedes(_ left: Slot, _ right: Slot) -> Bool {
        left.deadline < right.deadline || (left.deadline == right.deadline && left.id < right.id)
    }
}
