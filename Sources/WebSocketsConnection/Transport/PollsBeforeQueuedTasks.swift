import NIOCore

/// An event loop that polls its sockets before it runs the tasks that running tasks queued (``SocketLoop``): there
/// `execute` already lets the I/O that is ready go first, and a timer, counted in milliseconds, would sleep a whole
/// one. The hub asks for this capability, not for the loop's type.
package protocol PollsBeforeQueuedTasks: EventLoop {}
