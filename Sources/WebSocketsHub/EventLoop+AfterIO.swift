import NIOCore
import WebSocketsConnection

extension EventLoop {
    /// How long a task queued with ``executeAfterPendingIO(_:)`` waits when no I/O is pending: long enough that the
    /// loop's tick, which runs every ready task before it looks at its sockets again, finds it not yet due and
    /// polls; short enough that a broadcast pass of ten parts on an otherwise idle loop loses under a millisecond.
    static var pendingIOYield: TimeAmount { .microseconds(50) }

    /// Runs `task` on this loop after the loop has handled the I/O that is ready now (reads, writable sockets).
    ///
    /// `execute` does not do that: SwiftNIO's loop runs the tasks queued by running tasks in the same tick, so a
    /// chain of `execute`d parts holds the loop's sockets until the whole chain is done. A broadcast pass over
    /// 10,000 connections written in parts that way held every read of its loop (a publisher's next requests, a
    /// browser's message, an HTTP answer) for the whole pass: 60 ms at 8 frames a connection, 200 ms at one.
    /// A task due a little later is not run in the current tick: the loop polls its sockets first (returning at
    /// once when some are ready), then runs the task. A loop of ours (``SocketLoop``) runs what a task queues on its
    /// next tick, after polling, so there it is `execute`: its sleep is counted in milliseconds, and a 50 µs timer
    /// slept a whole one, 20 ms over a pass of 5,000 connections.
    func executeAfterPendingIO(_ task: @escaping @Sendable () -> Void) {
        if self is any PollsBeforeQueuedTasks {
            execute(task)
            return
        }
        scheduleTask(in: Self.pendingIOYield, task)
    }
}
