import NIOCore
import WebSocketsCore
import WebSocketsProtocol

/// Which queue a call to the site waits in.
public enum SiteLane: Sendable, Hashable {
    /// Session checks: served before any message post, with slots of their own.
    case session
    /// Posts of events for `owner` (a user): each owner holds at most a share of the message lane, and owners with
    /// calls waiting take turns.
    case message(owner: String)
}

/// The order in which waiting calls to the site start: session checks first, then message posts round-robin over
/// their owners, each owner with at most `ownerShare` under way, and a post with a key (its connection) only once no
/// earlier post of that key is under way: a connection's events reach the site in the order they happened, an
/// owner's other connections meanwhile wait behind it.
///
/// Measured on issue 12's main, with one queue of 32: 160 tabs of one user sending an action the site takes long
/// to answer made another user's `Client/authentication` wait 29.5 s. With these lanes it waits for nothing.
package struct SiteLanes<Item> {
    /// Calls under way at most.
    package let capacity: Int
    /// Slots message posts never take, so that a session check always finds one soon.
    let sessionReserve: Int
    /// Message posts of one owner under way at most.
    let ownerShare: Int

    private var sessions = CircularBuffer<Item>()
    private var messages: [String: CircularBuffer<(item: Item, key: String?)>] = [:]
    /// Keys with a post under way.
    private var runningKeys: Set<String> = []
    /// Owners with posts waiting, in turn order.
    private var turns = CircularBuffer<String>()
    private var runningByOwner: [String: Int] = [:]
    private(set) var running = 0
    private var runningMessages = 0
    /// Message posts waiting, kept as they come and go so that the status page reads a number, not the queues.
    private(set) var waitingMessages = 0

    /// Session checks waiting.
    package var waitingSessions: Int { sessions.count }

    /// What the lanes hold now: checks and posts waiting, calls under way.
    package var figures: (waitingSessions: Int, waitingMessages: Int, running: Int) {
        (sessions.count, waitingMessages, running)
    }

    /// Lanes for `capacity` calls at once: a quarter reserved for session checks and a quarter the most one owner
    /// may hold (at least one each, and all of it for a capacity under 4, such as the command line's client).
    package init(capacity: Int) {
        self.capacity = max(1, capacity)
        self.sessionReserve = self.capacity < 4 ? 0 : self.capacity / 4
        self.ownerShare = self.capacity < 4 ? self.capacity : max(1, self.capacity / 4)
    }

    /// How many calls wait.
    package var waiting: Int {
        sessions.count + waitingMessages
    }

    /// Queues `item` in `lane`, to start after the posts of `key` already queued or under way.
    package mutating func add(_ item: Item, lane: SiteLane, key: String? = nil) {
        switch lane {
        case .session:
            sessions.append(item)
        case .message(let owner):
            if messages[owner] == nil {
                messages[owner] = CircularBuffer()
                turns.append(owner)
            }
            messages[owner]!.append((item, key))
            waitingMessages += 1
        }
    }

    /// The next call to start, marked as under way, or `nil` when none may start now.
    package mutating func next() -> (item: Item, lane: SiteLane)? {
        guard running < capacity else { return nil }
        if let item = sessions.popFirst() {
            running += 1
            return (item, .session)
        }
        guard runningMessages < capacity - sessionReserve else { return nil }
        for _ in 0..<turns.count {
            let owner = turns.removeFirst()
            guard runningByOwner[owner, default: 0] < ownerShare, var queue = messages[owner],
                queue.first?.key.map({ !runningKeys.contains($0) }) ?? true
            else {
                turns.append(owner)
                continue
            }
            messages[owner] = nil
            let (item, key) = queue.removeFirst()
            waitingMessages -= 1
            if let key { runningKeys.insert(key) }
            if queue.isEmpty {
                // An owner with nothing waiting leaves the turns; it joins at the back with its next post.
            } else {
                messages[owner] = queue
                turns.append(owner)
            }
            running += 1
            runningMessages += 1
            runningByOwner[owner, default: 0] += 1
            return (item, .message(owner: owner))
        }
        return nil
    }

    /// A call of `lane` (and `key`) ended.
    package mutating func finished(_ lane: SiteLane, key: String? = nil) {
        running -= 1
        if let key { runningKeys.remove(key) }
        guard case .message(let owner) = lane else { return }
        runningMessages -= 1
        let left = runningByOwner[owner, default: 1] - 1
        runningByOwner[owner] = left > 0 ? left : nil
    }

    /// Removes and returns every waiting call.
    package mutating func removeAll() -> [Item] {
        var items = Array(sessions)
        for owner in turns { items += messages[owner].map { $0.map(\.item) } ?? [] }
        sessions.removeAll()
        messages = [:]
        turns.removeAll()
        waitingMessages = 0
        return items
    }
}

extension SiteLanes: Sendable where Item: Sendable {}
