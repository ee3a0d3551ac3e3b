import CoreMetrics
import class Prometheus.PrometheusCollectorRegistry
import struct Prometheus.PrometheusMetricsFactory
import WebSocketsProtocol

/// The server's metrics, through swift-metrics into a Prometheus registry of its own (so that several servers in
/// one process, as in tests or an embedding application, do not share counters).
public final class ServerMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    /// The same events for the status page, which reads them every 2 s.
    package let status = StatusCounters()
    private let factory: PrometheusMetricsFactory

    package let connections: CoreMetrics.Gauge
    package let authenticatedConnections: CoreMetrics.Gauge
    /// Bytes held by the events waiting for the site (`max_site_backlog_bytes`).
    package let siteBacklog: CoreMetrics.Gauge
    private let messagesIn: Counter
    private let messagesOut: Counter
    /// Flushes of frames to browsers by the loops' writers: `messages_out / flushes` is the frames each write
    /// carried.
    package let flushes: Counter
    private let sends: [Counter]
    package let authOK: Counter
    package let authRejected: Counter
    package let authFailed: Counter
    package let sessionCacheHits: Counter
    /// Accepts that failed (out of descriptors: the connection waits in the backlog) or whose connection could not
    /// be set up.
    package let acceptFailures: Counter
    /// The socket loops upgraded connections move to (0: they stay SwiftNIO channels, 1.5 → 3.6 KiB per idle
    /// connection), recorded at start.
    package let socketLoops: CoreMetrics.Gauge
    /// Connections that began with a send and were moved to a socket loop, read there by the server's own request
    /// reader instead of SwiftNIO's.
    package let publisherConnections: Counter
    /// Times freed memory was given back to the system (``MemoryTrimPolicy``).
    package let memoryTrims: Counter
    /// Writes of sends to PostgreSQL by this server, each one insert and one NOTIFY: the sends a cluster carried
    /// divided by it is how many each write took together.
    package let clusterWrites: Counter
    private let sessionRequestLatency: CoreMetrics.Timer
    private let residentMemory: CoreMetrics.Gauge
    private let heapInUse: CoreMetrics.Gauge
    private let openDescriptors: CoreMetrics.Gauge
    private let messageRequestLatency: CoreMetrics.Timer
    /// permessage-deflate's bytes: `[direction][form]`, direction `out` then `in`, form `uncompressed` then
    /// `compressed`.
    private let compressionBytes: [[Counter]]

    /// Metrics in a new registry.
    public init() {
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25),
            .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
            .seconds(2.5), .seconds(5), .seconds(10),
        ]
        self.registry = registry
        self.factory = factory
        connections = Gauge(label: "websockets_connections", factory: factory)
        residentMemory = Gauge(label: "process_resident_memory_bytes", factory: factory)
        heapInUse = Gauge(label: "websockets_heap_in_use_bytes", factory: factory)
        openDescriptors = Gauge(label: "process_open_fds", factory: factory)
        authenticatedConnections = Gauge(label: "websockets_connections_authenticated", factory: factory)
        siteBacklog = Gauge(label: "websockets_site_backlog_bytes", factory: factory)
        messagesIn = Counter(label: "websockets_messages_in_total", factory: factory)
        messagesOut = Counter(label: "websockets_messages_out_total", factory: factory)
        flushes = Counter(label: "websockets_flushes_total", factory: factory)
        sends = SendTo.allCases.map {
            Counter(label: "websockets_sends_total", dimensions: [("send_to", String($0.rawValue))], factory: factory)
        }
        authOK = Counter(label: "websockets_auth_total", dimensions: [("outcome", "ok")], factory: factory)
        authRejected = Counter(label: "websockets_auth_total", dimensions: [("outcome", "rejected")], factory: factory)
        authFailed = Counter(
            label: "websockets_auth_total", dimensions: [("outcome", "site_failure")], factory: factory)
        sessionCacheHits = Counter(label: "websockets_session_cache_hits_total", factory: factory)
        memoryTrims = Counter(label: "websockets_memory_trims_total", factory: factory)
        clusterWrites = Counter(label: "websockets_cluster_writes_total", factory: factory)
        acceptFailures = Counter(label: "websockets_accept_failures_total", factory: factory)
        socketLoops = Gauge(label: "websockets_socket_loops", factory: factory)
        publisherConnections = Counter(label: "websockets_publisher_connections_total", factory: factory)
        sessionRequestLatency = Timer(
            label: "websockets_site_request_duration_seconds", dimensions: [("endpoint", "session")],
            factory: factory)
        messageRequestLatency = Timer(
            label: "websockets_site_request_duration_seconds", dimensions: [("endpoint", "message")],
            factory: factory)
        compressionBytes = ["out", "in"].map { direction in
            ["uncompressed", "compressed"].map { form in
                Counter(
                    label: "websockets_compression_bytes_total",
                    dimensions: [("direction", direction), ("form", form)],
                    factory: factory)
            }
        }
    }

    /// Counts a message compressed for sending (once per send, whatever its recipients) or inflated on arrival:
    /// its payload's bytes before and after.
    package func compressed(outbound: Bool, uncompressed: Int, compressed: Int) {
        let counters = compressionBytes[outbound ? 0 : 1]
        counters[0].increment(by: uncompressed)
        counters[1].increment(by: compressed)
    }

    /// The counter of sends with `sendTo`.
    package func sends(_ sendTo: SendTo) -> Counter {
        sends[sendTo.rawValue - 1]
    }

    /// Counts a message read from a browser.
    package func messageIn() {
        messagesIn.increment()
        status.messagesIn.add()
    }

    /// Counts `count` frames queued for browsers.
    package func messagesOut(_ count: Int = 1) {
        guard count > 0 else { return }
        messagesOut.increment(by: count)
        status.messagesOut.add(count)
    }

    /// Records a call to the site's `endpoint` (`session` or `message`) that began at `start`.
    package func siteCall(_ endpoint: String, since start: ContinuousClock.Instant) {
        let nanoseconds = Self.nanoseconds(since: start)
        if endpoint == "session" {
            sessionRequestLatency.recordNanoseconds(nanoseconds)
            status.sessionChecks.record(nanoseconds: nanoseconds)
        } else {
            messageRequestLatency.recordNanoseconds(nanoseconds)
            status.messagePosts.record(nanoseconds: nanoseconds)
        }
    }

    /// Counts a failed call to the site; `reason` is a short word such as `timeout` or `status`.
    package func siteFailure(endpoint: String, reason: String) {
        status.siteFailed(endpoint: endpoint, reason: reason)
        Counter(
            label: "websockets_site_failures_total", dimensions: [("endpoint", endpoint), ("reason", reason)],
            factory: factory
        ).increment()
    }

    /// Counts messages accepted for delivery (to a browser or to the site) that did not get there, by reason.
    package func dropped(reason: DroppedReason, count: Int = 1) {
        status.dropped(reason, count: count)
        Counter(label: "websockets_dropped_total", dimensions: [("reason", reason.rawValue)], factory: factory)
            .increment(by: count)
    }

    /// Counts a browser's message refused before it was accepted (`rate`: over `message_rate`; `pending`: over
    /// `max_pending_messages`), answered with 429.
    package func refused(reason: RefusedReason) {
        status.refused(reason)
        Counter(label: "websockets_refused_total", dimensions: [("reason", reason.rawValue)], factory: factory)
            .increment()
    }

    /// Counts a connection the server closed, by reason.
    package func closed(reason: ClosedReason) {
        status.closed(reason)
        Counter(label: "websockets_closed_total", dimensions: [("reason", reason.rawValue)], factory: factory)
            .increment()
    }

    /// Counts a presence write or sweep (`operation`) that did not commit: `stalled` when it was given up on after
    /// making no progress, `database` when PostgreSQL failed it (gone, a lock or statement timeout). Nothing is
    /// lost (the server writes everything again), but presence events wait until it succeeds.
    package func presenceFailure(operation: String, reason: String) {
        Counter(
            label: "websockets_presence_failures_total", dimensions: [("operation", operation), ("reason", reason)],
            factory: factory
        ).increment()
    }

    /// Counts a cluster replay by how it ended: `complete`, `incomplete` (a bound or the retention window left some
    /// out), `busy` (no turn within its wait) or `failed` (PostgreSQL did not answer).
    package func replays(result: String) {
        Counter(label: "websockets_replays_total", dimensions: [("result", result)], factory: factory).increment()
    }

    private static func nanoseconds(since start: ContinuousClock.Instant) -> Int64 {
        let elapsed = ContinuousClock.now - start
        return elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    }

    /// Records what the process holds now (`process_resident_memory_bytes`, `websockets_heap_in_use_bytes`,
    /// `process_open_fds`).
    package func recordProcess(_ figures: ProcessFigures = .current()) {
        residentMemory.record(figures.resident)
        if let heap = figures.heapInUse { heapInUse.record(heap) }
        openDescriptors.record(figures.openDescriptors)
    }

    /// The Prometheus text exposition of every metric.
    public func render() -> [UInt8] {
        registry.emitToBuffer()
    }
}
