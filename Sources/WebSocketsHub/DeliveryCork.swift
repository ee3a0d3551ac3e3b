import NIOCore
import NIOPosix
import WebSocketsConnection
import WebSocketsCore

/// Holds back the loops' writers while an event loop handles one read of a connection, so that every send routed
/// from it (the pipelined requests of a publisher's keep-alive connection) reaches each loop's writer before that
/// writer runs, on this loop and on the others alike: each connection then gets all of their frames in one write.
/// The writers are woken by a task queued on this loop, which runs once the loop has handled the reads of its
/// current turn.
///
/// Without it, a loop other than the reading one began writing the first of eight pipelined broadcasts while the
/// reading loop was still routing the second (8 flushes instead of 4 in `CorkingTests`).
package final class DeliveryCork: @unchecked Sendable {
    // @unchecked: a cork is made, read and changed only on its own thread (it is thread-specific), and the task
    // that opens it runs on that thread's event loop.
    private static let perThread = ThreadSpecificVariable<DeliveryCork>()
    private let eventLoop: any EventLoop
    /// How many ``holding(on:_:)`` calls are under way on this thread (they nest: a pipelined request is handled
    /// while the answer to the one before it is written).
    private var depth = 0
    /// The writers held back, each once.
    private var held: [LoopShard] = []

    private init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Runs `body` on `eventLoop` (the current one), holding back the writers it gives sends to until the loop's
    /// current turn is over.
    package static func holding<T>(on eventLoop: any EventLoop, _ body: () throws -> T) rethrows -> T {
        let cork: DeliveryCork
        if let existing = perThread.currentValue {
            cork = existing
        } else {
            cork = DeliveryCork(eventLoop: eventLoop)
            perThread.currentValue = cork
        }
        cork.depth += 1
        defer { cork.depth -= 1 }
        return try body()
    }

    /// Holds back `shard`'s writer when a cork is in use on this thread; whether it did.
    package static func hold(_ shard: LoopShard) -> Bool {
        guard let cork = perThread.currentValue, cork.depth > 0 else { return false }
        if cork.held.isEmpty { cork.eventLoop.execute { cork.open() } }
        if !cork.held.contains(where: { $0 === shard }) { cork.held.append(shard) }
        return true
    }

    private func open() {
        let shards = held
        held = []
        for shard in shards { shard.scheduleDrain() }
    }
}
