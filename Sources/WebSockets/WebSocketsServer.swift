import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import ServiceLifecycle
import WebSocketsCluster
import WebSocketsConnection
import WebSocketsCore
import WebSocketsHub
import WebSocketsProtocol
import WebSocketsSite

/// A WebSockets server: `/WebSockets` for browsers, `/WebSockets/send`, `/WebSockets/health` and `/metrics`.
///
/// Embed it in a Swift application, register handlers with ``on(_:_:)``, send with
/// ``sendToClients(_:_:_:_:)``, and run it in a `ServiceGroup` (it is a `Service`) or with ``start()`` and
/// ``shutdown()``.
public final class WebSocketsServer: Service, Sendable {
    /// The settings it runs with.
    public let settings: Settings
    /// `trusted_proxies`, read once.
    let proxies: TrustedProxies
    /// Its metrics, rendered at `/metrics`.
    public let metrics: ServerMetrics
    /// Refusals in the log: each reason at most once every 10 s, with its count.
    let refusals = RefusalLog()
    /// The bytes of waiting messages held for connections not authenticated yet (`max_unauthenticated_bytes`).
    let pendingBudget: PendingBudget
    /// The bytes held by events waiting for the site (`max_site_backlog_bytes`).
    let siteBacklog: PendingBudget
    /// Its connections.
    public let hub: Hub
    let logger: Logger
    let site: SiteClient
    let bus: any MessageBus
    /// Where sends go: here or through the bus.
    let router: SendRouter
    /// A server alone or a cluster, chosen once (``ClusterMode``).
    let mode: ClusterMode
    /// ``address``, kept when the server starts (every event carries it: formatting it per message was 1.4% of an
    /// echo's profile).
    let advertisedAddress = NIOLockedValueBox("")
    let curl: CurlClient
    let group: any EventLoopGroup
    let additionalResponder: (@Sendable (HTTPServerRequest) async -> HTTPServerResponse?)?
    private let serverID: String
    let startedAt = ContinuousClock.now
    let httpConnections = HTTPConnectionCount()

    /// Open HTTP (non-WebSocket) connections.
    var httpConnectionCount: Int { httpConnections.value }

    struct Runtime {
        var listener: Listener?
        var trimTimer: RepeatedTask?
        var presenceTimer: RepeatedTask?
        var statusTimer: RepeatedTask?
        /// Announces the cluster's presence decisions this server made.
        var presenceAnnouncer: Task<Void, Never>?
        var port = 0
        var stopping = false
        /// Set once the bus is up: until then health answers 503 "starting" and upgrades are refused, so that
        /// nothing (web start, a load balancer) takes a server for started that may yet fail to join its cluster.
        var ready = false
        var nextConnection: UInt64 = 0
        var drains = 0
        var drainWaiters: [CheckedContinuation<Void, Never>] = []
        #if os(Linux)
            /// Where upgraded connections go (``SocketLoop``), the last one given.
            var socketLoops: [SocketLoop] = []
            var nextSocketLoop = 0
            /// Whether upgraded connections move to loops of ours; tests turn it off to run SwiftNIO's path.
            var socketLoopsWanted = true
        #endif
    }

    let runtime = NIOLockedValueBox(Runtime())
    /// Events the site did not take while the server stopped: logged once, with their count, at the end of the stop.
    let eventsLostAtStop = NIOLockedValueBox(0)
    let handlers = NIOLockedValueBox<[String: [WebSocketsEventHandler]]>([:])
    /// Who is online (``PresenceLedger``).
    let presence: NIOLockedValueBox<PresenceLedger>
    /// What every connection's handler shares: limits, metrics, refusals.
    let connectionEnvironment: ConnectionEnvironment
    /// Who may see the status page.
    let statusAccess: StatusAccess
    /// Wrong keys at the status page's sign-in, by address.
    let statusLimiter = AttemptLimiter()
    /// The status page's samples and the cluster's pool as last read.
    let status = NIOLockedValueBox(StatusState())

    /// A server for `settings`; `additionalRoutes` answers HTTP requests the server has no route for (a site
    /// served from the same port, as the demo does), returning `nil` to fall through to 404.
    public init(
        settings: Settings, logger: Logger = Logger(label: "websockets"),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        additionalRoutes: (@Sendable (HTTPServerRequest) async -> HTTPServerResponse?)? = nil
    ) {
        self.settings = settings
        statusAccess = StatusAccess(securityKey: settings.securityKey)
        let mode = ClusterMode(settings: settings)
        self.mode = mode
        self.proxies = TrustedProxies(settings: settings)
        self.presence = NIOLockedValueBox(
            PresenceLedger(
                grace: .milliseconds(Int64(settings.presenceGrace * 1000)),
                sharesCounts: mode.sharesPresenceCounts))
        self.logger = logger
        self.group = group
        self.additionalResponder = additionalRoutes
        let metrics = ServerMetrics()
        self.metrics = metrics
        pendingBudget = PendingBudget(limit: settings.maxUnauthenticatedBytes)
        siteBacklog = PendingBudget(limit: settings.maxSiteBacklogBytes)
        self.hub = Hub(metrics: metrics, logger: logger, settings: settings)
        self.curl = CurlClient(maximumConcurrency: settings.siteConcurrency)
        self.site = SiteClient(curl: curl, settings: settings, metrics: metrics, logger: logger)
        var generator = SystemRandomNumberGenerator()
        let serverID = String(generator.next() & 0xFFFF_FFFF, radix: 16)
        self.serverID = serverID
        bus = mode.makeBus(
            settings: settings, hub: hub, metrics: metrics, logger: logger, serverID: serverID,
            address: advertisedAddress, presence: presence)
        router = mode.router(hub: hub, bus: bus)
        connectionEnvironment = ConnectionEnvironment(
            settings: settings, holdsForReplay: mode.holdsLiveMessagesUntilReplay, metrics: metrics, refusals: refusals)
    }

    /// The port it listens on, once started.
    public var port: Int { runtime.withLockedValue { $0.port } }

    /// How other servers and senders reach this one.
    public var address: String {
        let kept = advertisedAddress.withLockedValue { $0 }
        return kept.isEmpty ? formattedAddress : kept
    }

    private var formattedAddress: String {
        settings.serverAddress ?? "ws://127.0.0.1:\(port)/WebSockets"
    }

    /// The bound of a connection's outbound queue (`max_outbound_buffer`, at least 1 KiB) and, at half of it, where
    /// it is writable again: for SwiftNIO's channels and for our sockets (``SocketLoop``) alike.
    var outboundWaterMark: ChannelOptions.Types.WriteBufferWaterMark {
        let high = max(settings.maxOutboundBuffer, 1024)
        return .init(low: high / 2, high: high)
    }

    /// Registers an in-process handler for `event`: `WebSockets/message`, `Client/authentication` or
    /// `Client/disconnection`. Handlers run in registration order, before the event is posted to the site.
    public func on(_ event: String, _ handler: @escaping WebSocketsEventHandler) {
        handlers.withLockedValue { $0[event, default: []].append(handler) }
    }

    /// Sends `action` with `details` to the connections `sendTo` and `target` select (the seed's
    /// `send_to_clients`), on every server of the cluster. Returns how many connections of this server it was
    /// written to at once; in a cluster the send goes through PostgreSQL (in call order) and this is 0.
    @discardableResult
    public func sendToClients(_ action: String, _ details: JSON = .null, _ sendTo: SendTo, _ target: JSON = .null)
        -> Int
    {
        router.enqueue([Send(action: action, details: details, sendTo: sendTo, target: target)])
    }

    /// Performs sends on every server of the cluster; returns once they are accepted (written to PostgreSQL, or
    /// delivered here on a single server). Sends to connections of this server only stay here.
    public func perform(_ sends: [Send]) async {
        await router.perform(sends)
    }

    // MARK: Lifecycle

    /// Binds and starts serving; throws a ``SettingsError`` before binding when a setting is out of its range.
    public func start() async throws {
        try settings.validate()
        let host = settings.listenLocally ? "127.0.0.1" : "0.0.0.0"
        #if os(Linux)
            startSocketLoops()
        #endif
        let listener: Listener
        let port: Int
        do {
            (listener, port) = try await PortSetting.binding("listen_port", port: settings.listenPort, host: host) {
                try await listen(host: host)
            }
        } catch {
            #if os(Linux)
                await stopSocketLoops()
            #endif
            throw error
        }
        runtime.withLockedValue {
            $0.listener = listener
            $0.port = port
        }
        let formatted = formattedAddress
        advertisedAddress.withLockedValue { $0 = formatted }
        let timers = group.next()
        startTrimming(on: timers)
        startPresenceTimer(on: timers)
        startStatusSampling(on: timers)
        do {
            try await bus.start()
        } catch {
            await listener.close()
            #if os(Linux)
                await stopSocketLoops()
            #endif
            throw error
        }
        // Presence decided in PostgreSQL arrives here (a single server's bus has none: the task ends at once).
        do {
            let (decisions, observed) = (bus.presenceDecisions, bus.presenceObserved)
            let announcer = Task { [self] in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { for await change in decisions { await self.dispatchPresence(change) } }
                    group.addTask { for await change in observed { self.tellWatchers(change) } }
                }
            }
            runtime.withLockedValue { $0.presenceAnnouncer = announcer }
        }
        runtime.withLockedValue { $0.ready = true }
        logger.info(
            "listening", metadata: ["address": "\(host):\(port)", "site": "\(settings.site)", "server": "\(address)"])
    }

    /// Serves until graceful shutdown (SIGTERM/SIGINT in a `ServiceGroup`), then shuts down.
    public func run() async throws {
        try await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// The longest a stop takes, whatever the site, PostgreSQL and the other servers do meanwhile: `site_timeout`
    /// + 2 s for the site to take the last events, 1 s more for the handlers, 10 s for the cluster's bus, 1 s for
    /// presence announcements, 1 s for the close frames, and 2 s to spare for the loops and threads to end.
    public static func stopBound(siteTimeout: Double) -> Duration {
        .seconds(siteTimeout + 17)
    }

    /// Stops accepting, closes every connection with 1001 "going away", lets in-flight site calls finish for up to
    /// `site_timeout` + 2 s, then fails the rest; ends within ``stopBound(siteTimeout:)``.
    public func shutdown() async {
        let (first, listener) = runtime.withLockedValue { runtime -> (Bool, Listener?) in
            if runtime.stopping { return (false, nil) }
            runtime.stopping = true
            return (true, runtime.listener)
        }
        guard first else { return }
        guard let listener else {
            // Never started: only the site client's thread to stop.
            await curl.shutdown()
            return
        }
        runtime.withLockedValue {
            $0.trimTimer?.cancel()
            $0.presenceTimer?.cancel()
            $0.statusTimer?.cancel()
        }
        logger.info("shutting down")
        await listener.close()
        for connection in hub.allConnections() {
            connection.close(code: .goingAway, reason: "Server shutting down")
        }
        // The stop's bound (docs/production.md): site_timeout + 2 s for the site to take the last events, then at
        // most 10 s for the rest, whatever the site, PostgreSQL and the other servers do meanwhile.
        await waitForDrains(limit: .seconds(settings.siteTimeout + 2))
        // What the site has not taken by now fails at once (counted below), so that nothing after waits for it.
        curl.abandon()
        await waitForDrains(limit: .seconds(1))
        await bus.shutdown()
        // The decisions made before the bus stopped are told; its stream has ended.
        if let announcer = runtime.withLockedValue({ $0.presenceAnnouncer }) {
            await PostgresDeadline.waited(for: announcer, within: .seconds(1)) {
                logger.warning("shutdown: presence announcements still under way after the limit")
            }
        }
        // Give the close frames a moment to reach the clients before the process may exit.
        let deadline = ContinuousClock.now + .seconds(1)
        while hub.counts.connections > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        #if os(Linux)
            await stopSocketLoops()
        #endif
        await curl.shutdown()
        releaseDrainWaiters()
        refusals.flush(all: true)
        let lost = eventsLostAtStop.withLockedValue { $0 }
        if lost > 0 {
            logger.warning(
                "shutdown: events the site did not take (Client/disconnection, User/offline...)",
                metadata: ["count": "\(lost)"])
        }
        logger.info("stopped")
    }

    /// Waits until no connection's messages are being handled, at most `limit`. The wait is abandoned, not awaited,
    /// at the limit: a task group would wait for its waiting child (a stop once waited here for every event the
    /// site took its whole timeout over). A waiter left behind is resumed at the end of the stop.
    private func waitForDrains(limit: Duration) async {
        let done =
            (try? await PostgresDeadline.bounded(limit) { [self] in
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    let now = runtime.withLockedValue { runtime -> Bool in
                        if runtime.drains == 0 { return true }
                        runtime.drainWaiters.append(continuation)
                        return false
                    }
                    if now { continuation.resume() }
                }
            }) != nil
        if !done {
            logger.warning("shutdown: site calls still under way after the limit")
        }
    }

    /// Resumes the waiters that drains did not end in time.
    private func releaseDrainWaiters() {
        let waiters = runtime.withLockedValue { runtime in
            defer { runtime.drainWaiters = [] }
            return runtime.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    // MARK: Channels

    /// Sets up a new connection's pipeline; `descriptor`, where known, lets its socket move once upgraded.
    func configure(_ channel: any Channel, descriptor: CInt?) throws {
        let upgrader = WebSocketUpgrader(
            shouldUpgrade: { [self] channel, head in
                let address = clientAddress(head.headers, peer: channel.remoteAddress?.ipAddress ?? "")
                let refusal = upgradeRefusal(
                    path: HTTPRequestHandler.split(head.uri).0, headers: head.headers, address: address)
                if let refusal, refusal.0 != .notFound {
                    // Logged and counted here, once; the HTTP handler answers with the same refusal.
                    refusals.refused(
                        "upgrade \(refusal.0.code)", "upgrade refused", logger: logger,
                        metadata: ["reason": "\(refusal.1)", "ip": "\(address)"])
                    metrics.closed(
                        reason: refusal.0 == .forbidden
                            ? .origin : refusal.0 == .tooManyRequests ? .perIPCap : .refused)
                }
                guard refusal == nil else { return channel.eventLoop.makeSucceededFuture(nil) }
                var headers = HTTPHeaders()
                if let deflate = deflateAgreement(head.headers) {
                    headers.add(name: "Sec-WebSocket-Extensions", value: deflate.responseHeader)
                }
                return channel.eventLoop.makeSucceededFuture(headers)
            },
            makeHandler: { [self] channel, head in
                let credentials = BrowserCredentials(
                    cookie: head.headers[canonicalForm: "cookie"].joined(separator: "; "),
                    userAgent: head.headers.first(name: "user-agent") ?? "",
                    acceptLanguage: head.headers.first(name: "accept-language") ?? "",
                    address: clientAddress(head.headers, peer: channel.remoteAddress?.ipAddress ?? ""))
                let deflate = deflateAgreement(head.headers)
                #if os(Linux)
                    if let descriptor,
                        let handoff = socketHandoff(of: descriptor, credentials: credentials, deflate: deflate)
                    {
                        return handoff
                    }
                #endif
                return makeConnectionHandler(
                    credentials: credentials, deflate: deflate, shard: hub.shard(for: channel.eventLoop))
            })
        let guardHandler = HTTPConnectionGuard(
            settings: settings, counter: httpConnections, metrics: metrics, logger: logger)
        let httpHandler = HTTPRequestHandler(
            admit: { [self] head, address in admit(head, address: address) },
            readsAhead: Self.readsAhead,
            connectionGuard: guardHandler,
            immediate: { [self] request in respondImmediately(to: request) },
            responder: { [self] request in await respond(to: request) })
        try channel.pipeline.syncOperations.addHandler(guardHandler, name: "websockets-http-guard")
        #if os(Linux)
            if let descriptor, let sniffer = publisherSniffer(of: descriptor, connectionGuard: guardHandler) {
                try channel.pipeline.syncOperations.addHandler(sniffer, name: "websockets-publisher-sniffer")
            }
        #endif
        // The handler answers pipelined requests in order itself (``AnswerQueue``), so that sends may be handled
        // while the answers ahead of them are owed; SwiftNIO's pipelining handler held each request until the
        // answer before it was written.
        // Without SwiftNIO's validation of outbound headers: the server writes its own, known headers (6.2% of the
        // samples of a targeted send went to validating them); an embedding application's answers are checked in
        // `respond(to:)` (``HTTPServerResponse/hasValidHeaders``).
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(
            withPipeliningAssistance: false,
            withServerUpgrade: (
                upgraders: [upgrader],
                completionHandler: { context in
                    context.pipeline.removeHandler(name: "websockets-http", promise: nil)
                    context.pipeline.removeHandler(name: "websockets-http-guard", promise: nil)
                }
            ),
            withOutboundHeaderValidation: false)
        try channel.pipeline.syncOperations.addHandler(httpHandler, name: "websockets-http")
    }

    /// The permessage-deflate agreement for an upgrade's offers (its `Sec-WebSocket-Extensions` headers), or `nil`
    /// when compression is off or no offer can be honoured: the one rule that the upgrade's answer and the
    /// connection's handler both follow.
    func deflateAgreement(_ headers: HTTPHeaders) -> DeflateNegotiation? {
        guard connectionEnvironment.compression.isEnabled else { return nil }
        return DeflateNegotiation.agreement(offers: headers["Sec-WebSocket-Extensions"])
    }

    /// The client's address: the peer's, or, when the peer is one of `trusted_proxies`, the one its
    /// `X-Forwarded-For` names (``TrustedProxies``).
    func clientAddress(_ headers: HTTPHeaders, peer: String) -> String {
        proxies.clientAddress(peer: peer, headers: headers)
    }

    /// Why a WebSocket upgrade is refused, or `nil` when it may go ahead. Decides for the upgrader and for the
    /// HTTP answer to a refused upgrade alike.
    func upgradeRefusal(path: String, headers: HTTPHeaders, address: String) -> (HTTPResponseStatus, String)? {
        guard path == "/WebSockets" || path == "/WebSockets/" else { return (.notFound, "Not Found") }
        if isStopping { return (.serviceUnavailable, "Server shutting down") }
        if !isReady { return (.serviceUnavailable, "Server starting") }
        guard settings.allows(origin: headers.first(name: "origin")) else { return (.forbidden, "Origin not allowed") }
        let cap = settings.maxConnectionsPerIP
        if cap > 0 && hub.connectionCount(address: address) >= cap {
            return (.tooManyRequests, "Too many connections from this address")
        }
        return nil
    }

    /// Every second, returns freed memory to the system once the allocator keeps much of it (``MemoryTrimPolicy``).
    private func startTrimming(on eventLoop: any EventLoop) {
        let timer = eventLoop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [weak self] _ in
            guard let self else { return }
            refusals.flush()
            guard MemoryTrimPolicy.checkProcess(busy: runtime.withLockedValue { $0.drains > 0 }) else { return }
            MemoryTrimPolicy.trimProcess { [weak self] before, after in
                self?.metrics.memoryTrims.increment()
                self?.logger.debug(
                    "memory given back", metadata: ["resident_before": "\(before)", "resident": "\(after)"])
            }
        }
        runtime.withLockedValue { $0.trimTimer = timer }
    }

    /// Whether shutdown has begun.
    var isStopping: Bool { runtime.withLockedValue { $0.stopping } }
    var isReady: Bool { runtime.withLockedValue { $0.ready } }

    func beginDrain() {
        runtime.withLockedValue { $0.drains += 1 }
    }

    func endDrain() {
        let waiters = runtime.withLockedValue { runtime -> [CheckedContinuation<Void, Never>] in
            runtime.drains -= 1
            guard runtime.drains == 0 else { return [] }
            defer { runtime.drainWaiters = [] }
            return runtime.drainWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// A handler for a new connection of the browser that presented `credentials` and negotiated `deflate`, with its
    /// ``Connection`` (its delegate, which tells this server of it).
    func makeConnectionHandler(credentials: BrowserCredentials, deflate: DeflateNegotiation?, shard: LoopShard)
        -> WebSocketConnectionHandler
    {
        let handler = WebSocketConnectionHandler(environment: connectionEnvironment, deflate: deflate)
        _ = Connection(
            id: nextConnectionID(), credentials: credentials, handler: handler, shard: shard, logger: logger,
            budget: pendingBudget, events: self)
        return handler
    }

    func nextConnectionID() -> String {
        let number = runtime.withLockedValue { runtime -> UInt64 in
            runtime.nextConnection += 1
            return runtime.nextConnection
        }
        return serverID + "-" + String(number)
    }
}
