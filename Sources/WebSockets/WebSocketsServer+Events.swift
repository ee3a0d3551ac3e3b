import Foundation
import Logging
import NIOCore
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

extension WebSocketsServer: ConnectionEvents {
    /// A connection opened: indexed, unless its address is over `max_connections_per_ip` (checked before the
    /// upgrade; another connection from the address won the race).
    package func connectionOpened(_ connection: Connection) -> Bool {
        guard hub.add(connection, limit: settings.maxConnectionsPerIP) else {
            refusals.refused(
                "per_ip_cap", "too many connections from one address", logger: connection.logger,
                metadata: ["ip": "\(connection.address)"])
            return false
        }
        return true
    }

    /// A decoded message from a connection's event loop: queued in order, handled by the connection's drain, unless
    /// the connection's waiting messages are at their limits, or the server's budget for connections not
    /// authenticated yet is spent.
    package func received(_ message: Message, from connection: Connection) -> MessageReception {
        let limits = Connection.Limits(messages: settings.maxPendingMessages, bytes: settings.maxPendingBytes)
        switch connection.enqueue(message, limits: limits) {
        case .full:
            return .refused(reason: .pending)
        case .fullBytes:
            return .refused(reason: .pendingBytes)
        case .budgetSpent:
            return .refused(reason: .unauthenticatedBudget)
        case .closing:
            metrics.dropped(reason: .closed)
            return .closing
        case .queued(let start):
            if start { startDrain(connection) }
            return .accepted
        }
    }

    /// A connection ended: it leaves the indexes at once (no more sends reach it); its messages still waiting are
    /// discarded (counted), and an authenticated one gets its `Client/disconnection` event after the message being
    /// handled, if any.
    package func connectionClosed(_ connection: Connection) {
        hub.remove(connection)
        let (discarded, start) = connection.closed()
        if discarded > 0 {
            metrics.dropped(reason: .closed, count: discarded)
            connection.userLogger.info(
                "connection closed: its waiting messages are discarded", metadata: ["count": "\(discarded)"])
        }
        if start { startDrain(connection) }
    }

    private func startDrain(_ connection: Connection) {
        beginDrain()
        // On the connection's loop: a handler's reply is routed and written there, in the same turn.
        Task(executorPreference: connection.shard.taskExecutor) {
            while let item = connection.nextInbound() {
                await self.process(item, for: connection)
            }
            self.endDrain()
        }
    }

    private func process(_ item: Connection.Inbound, for connection: Connection) async {
        switch item {
        case .disconnected:
            guard let session = connection.session else { return }
            presenceClosed(session)
            await dispatch(
                name: "Client/disconnection", message: Message(action: "Client/disconnection"), connection: connection,
                session: session)
        case .message(let message):
            if message.action.hasPrefix("Application/Internal:") {
                handleInternal(message, from: connection)
            } else if message.action == "Client/authentication" {
                await authenticate(message, connection: connection)
            } else if let session = connection.session {
                await dispatch(name: "WebSockets/message", message: message, connection: connection, session: session)
            } else {
                connection.logger.debug(
                    "message before authentication not dispatched", metadata: ["action": "\(message.action)"])
                metrics.dropped(reason: .unauthenticated)
            }
        }
    }

    /// The seed's way to send from another program: `["Application/Internal:<key>", "<JSON of a send>"]`; the
    /// server performs the send and closes that connection.
    private func handleInternal(_ message: Message, from connection: Connection) {
        let key = message.action.dropFirst("Application/Internal:".count)
        guard SecurityKey.matches(key, settings.securityKey) else {
            // The action carries a key: it is never echoed or logged.
            metrics.refused(reason: .internalKey)
            refusals.refused(
                "internal_key", "internal message with a wrong key", level: .warning, logger: connection.logger)
            connection.send(Message(action: "Application/Internal:error", details: composeError(403)))
            connection.close(code: .policyViolation, reason: "Forbidden")
            return
        }
        do {
            // The send comes as JSON text in a string (the seed's form) or as the array itself.
            let text: [UInt8]
            if case .string(let string) = message.details {
                text = Array(string.utf8)
            } else {
                text = message.rawDetails.bytes
            }
            let sends = try Send.list(parsing: text)
            Task {
                await self.perform(sends)
                connection.close(code: .normal, reason: "Sent")
            }
        } catch {
            connection.logger.info("malformed internal send", metadata: ["error": "\(error)"])
            connection.send(Message(action: "Application/Internal:error", details: composeError(400, "\(error)")))
            connection.close(code: .invalidData, reason: "Malformed send")
        }
    }

    private func authenticate(_ message: Message, connection: Connection) async {
        if connection.session != nil {
            connection.send(Message(action: "Client/authentication", details: "ok"))
            return
        }
        if siteBacklog.isSpent && settings.resolvedMessageEndpoint != nil {
            // The site is slower than the events: a new tab would add two more (its authentication, and the
            // disconnection that must follow it). It retries with its backoff; the tabs already in keep everything.
            metrics.refused(reason: .siteBacklog)
            refusals.refused(
                "site_backlog", "authentication refused: the events waiting for the site hold max_site_backlog_bytes",
                level: .warning, logger: connection.logger)
            connection.send(Message(action: "Client/authentication:error", details: composeError(503)))
            discardOnClose(connection, code: .tryAgainLater, reason: "Service Unavailable")
            return
        }
        let result = await site.validate(connection.credentials)
        guard !connection.isClosed else {
            // Closed while the site answered: no Client/authentication event, since no disconnection would follow.
            connection.logger.debug("closed during authentication")
            return
        }
        switch result {
        case .valid(let session) where !session.isExpired(now: Int64(Date().timeIntervalSince1970)):
            guard hub.authenticate(connection, session: session) else {
                connection.logger.debug("closed during authentication")
                return
            }
            metrics.authOK.increment()
            connection.userLogger.debug("authenticated")
            connection.send(Message(action: "Client/authentication", details: "ok"))
            // In a cluster the connection's live messages are held from its start until the replay has gone out.
            if mode.replaysMissedMessages { await recover(connection, after: message.details["last_id"]?.intValue) }
            let change = presenceOpened(session)
            sendPresenceSnapshot(to: connection, session: session)
            await dispatch(name: "Client/authentication", message: message, connection: connection, session: session)
            if let change { await dispatchPresence(change, after: connection.id) }
        case .valid, .rejected:
            metrics.authRejected.increment()
            connection.logger.info("authentication rejected by the site")
            connection.send(Message(action: "Client/authentication:error", details: composeError(403)))
            discardOnClose(connection, code: .policyViolation, reason: "Forbidden")
        case .failed(let reason):
            metrics.authFailed.increment()
            connection.logger.warning("authentication impossible: site failure", metadata: ["reason": "\(reason)"])
            connection.send(Message(action: "Client/authentication:error", details: composeError(503)))
            discardOnClose(connection, code: .tryAgainLater, reason: "Service Unavailable")
        }
    }

    /// Closes `connection` and counts the messages it sent that are discarded with it.
    private func discardOnClose(_ connection: Connection, code: WebSocketCloseCode, reason: String) {
        let discarded = connection.close(code: code, reason: reason)
        if discarded > 0 { metrics.dropped(reason: .closed, count: discarded) }
    }

    /// Replays to a reconnected browser the messages it missed since `lastID`, in order and before live ones, then
    /// tells it `Client/recovery {last_id, recovered, complete}` (`complete` false: some were older than the
    /// retention window, the page should refetch). A new browser just learns the current `last_id`. Either way the
    /// live messages held since the connection opened follow, without those it already has.
    private func recover(_ connection: Connection, after lastID: Int64?) async {
        let head = bus.head
        func recovery(_ lastID: Int64, recovered: Int, complete: Bool) -> ByteBuffer {
            let details: JSON = [
                "last_id": .int(lastID), "recovered": .int(Int64(recovered)), "complete": .bool(complete),
            ]
            return ByteBuffer(bytes: Message(action: "Client/recovery", details: details).encoded())
        }
        guard let lastID, lastID < head else {
            connection.release(
                replay: [recovery(max(lastID ?? head, head), recovered: 0, complete: true)], through: lastID,
                replayed: [])
            return
        }
        var frames: [ByteBuffer] = []
        var replayed = Set<Int64>()
        var complete = false
        do {
            // At most what the connection may have waiting: a replay larger than that would close it as slow.
            let (rows, retained) = try await bus.messages(
                after: lastID, through: head, for: hub.replayRecipient(connection), budget: settings.maxOutboundBuffer)
            complete = retained
            for (id, send) in rows {
                replayed.insert(id)
                frames.append(
                    ByteBuffer(bytes: Message(action: send.action, rawDetails: send.rawDetails).encoded(id: id)))
            }
        } catch {
            connection.userLogger.warning("recovery failed", metadata: ["error": "\(String(reflecting: error))"])
        }
        frames.append(recovery(head, recovered: frames.count, complete: complete))
        connection.release(replay: frames, through: lastID, replayed: replayed)
    }

    /// Hands an event to the in-process handlers, then to the site, and performs the sends in the site's answer.
    /// Only a browser's own message gets an `:error` reply when that fails; system events are logged.
    private func dispatch(name: String, message: Message, connection: Connection, session: SessionInfo) async {
        let isMessage = name == "WebSockets/message"
        let event = WebSocketsEvent(
            name: name, action: isMessage ? message.action : name, message: message,
            sessionLanguage: session.language, acceptLanguage: connection.credentials.acceptLanguage,
            user: session.user, session: session.session, connection: connection.id,
            server: address, owner: self,
            origin: connection)
        let registered = handlers.withLockedValue { $0[name] ?? [] }
        for handler in registered {
            do {
                try await handler(event)
            } catch {
                connection.userLogger.warning(
                    "event handler failed", metadata: ["event": "\(name)", "error": "\(error)"])
                if isMessage { connection.send(message.errorReply(code: 500)) }
            }
        }
        guard settings.resolvedMessageEndpoint != nil else { return }
        let owner = session.user.indexKey
        guard isMessage else {
            // Client/authentication and Client/disconnection wait for the site as data, not as this drain: every
            // authentication the site saw is followed by its disconnection, whatever the site's pace.
            postEvent(
                name, owner: owner, after: connection.id, bytes: message.rawDetails.bytes.count,
                logger: { connection.userLogger }
            ) { event.siteBody }
            return
        }
        // A browser's message is not posted once its connection has closed (its turn may come long after).
        switch await site.post(
            event: event.siteBody, owner: owner, after: connection.id, isWanted: { !connection.isClosed })
        {
        case .success(let sends):
            await perform(sends)
        case .failure(.cancelled):
            metrics.dropped(reason: .closed)
            connection.userLogger.debug("connection closed before its message's turn: not posted")
        case .failure(let error):
            siteEventFailed(name, error: error, logger: connection.userLogger, action: event.action)
            connection.send(message.errorReply(code: error.code))
        }
    }

    /// Queues a system event (`Client/authentication`, `Client/disconnection`, `User/online`, `User/offline`) for
    /// the site in `owner`'s turn, after the earlier events of `key` (its connection), and returns at once. What
    /// waits is what `body` captures (the event's fields, shared with its connection), not a suspended task: with
    /// a site slower than a login storm, each connection's drain held one (measured in Benchmarks/RESULTS.md).
    /// The sends of the site's answer are performed when it comes; a stop waits for the event like for a drain.
    /// It counts against `max_site_backlog_bytes` with `bytes` of details and ``waitingEventCost`` until the site
    /// has answered, and is never refused: past the limit, new tabs are (``authenticate(_:connection:)``).
    func postEvent(
        _ name: String, owner: String, after key: String?, bytes: Int = 0, logger: @escaping @Sendable () -> Logger,
        body: @escaping @Sendable () -> [UInt8]
    ) {
        beginDrain()
        let held = Self.waitingEventCost + bytes
        siteBacklog.hold(held)
        site.enqueue(owner: owner, after: key, event: body) { [self] result in
            siteBacklog.release(held)
            switch result {
            case .success(let sends) where !sends.isEmpty:
                Task {
                    await self.perform(sends)
                    self.endDrain()
                }
                return
            case .success:
                break
            case .failure(let error):
                siteEventFailed(name, error: error, logger: logger())
            }
            endDrain()
        }
    }

    /// What an event waiting for the site holds besides its details, in bytes: measured 1.07 KiB (19,000 tabs, two
    /// events each waiting: 40 MiB of heap above the same tabs idle; Benchmarks/RESULTS.md).
    static let waitingEventCost = 1_100

    /// An event the site did not take: a warning each while the server runs; while it stops (its tabs all close at
    /// once, and the site may be going away too: 8,439 warnings for 10,000 tabs once) only counted, and told once
    /// with the count at the end of the stop.
    func siteEventFailed(_ name: String, error: SiteCallError, logger: Logger, action: String? = nil) {
        if isStopping {
            eventsLostAtStop.withLockedValue { $0 += 1 }
            metrics.dropped(reason: .shutdown)
            return
        }
        logger.warning(
            "message endpoint failed",
            metadata: ["event": "\(name)", "action": "\(action ?? name)", "error": "\(error)"])
    }
}
