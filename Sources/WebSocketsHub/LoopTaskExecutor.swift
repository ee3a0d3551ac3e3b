import NIOCore
import WebSocketsConnection

/// Runs a task's jobs on one event loop: the handling of a connection's messages (and the in-process handlers it
/// calls) stays on the connection's loop, so a reply to a browser's message is routed and written without a thread
/// hop. With the handling on Swift's cooperative pool, each echo went loop → pool → loop, two wake-ups of another
/// thread: 33,267 echoes/s at 29.5 µs of CPU each, where Node `ws` did 45,870 at 21.5 (`LoadGenerator run --peers
/// ws,ours --only echo`, 100 in flight).
package final class LoopTaskExecutor: TaskExecutor {
    /// The loop the jobs run on.
    package let eventLoop: any EventLoop

    package init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        eventLoop.execute { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
