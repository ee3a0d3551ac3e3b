import CCurl
import Foundation
import NIOConcurrencyHelpers
import WebSocketsCore
import WebSocketsProtocol

/// An HTTP client on libcurl's multi interface: one thread drives every transfer, keep-alive connections are
/// reused from the multi handle's cache, each transfer has a hard timeout, and at most `maximumConcurrency`
/// transfers run at once; the rest wait in `SiteLanes`: session checks first, message posts taking turns by owner.
///
/// Callers never block a thread: `perform` suspends until the curl thread completes the transfer.
public final class CurlClient: Sendable {
    private static let globalInit: Void = { _ = curl_global_init(Int(CURL_GLOBAL_DEFAULT)) }()

    private struct State {
        var lanes: SiteLanes<CurlTransfer>
        var stopping = false
        /// Requests waiting or under way fail at once (``abandon()``).
        var abandoning = false
    }

    private let multi: CurlMultiHandle
    private let state: NIOLockedValueBox<State>
    private let finished = NIOLockedValueBox<[CheckedContinuation<Void, Never>]?>([])
    private let maximumConcurrency: Int
    private let maximumResponseBytes: Int

    /// Starts the curl thread.
    public init(maximumConcurrency: Int = 32, maximumResponseBytes: Int = 4 << 20) {
        _ = Self.globalInit
        self.maximumConcurrency = max(1, maximumConcurrency)
        self.maximumResponseBytes = maximumResponseBytes
        self.state = NIOLockedValueBox(State(lanes: SiteLanes(capacity: self.maximumConcurrency)))
        self.multi = CurlMultiHandle(curl_multi_init())
        _ = ws_curl_multi_setopt_long(multi.pointer, CURLMOPT_MAXCONNECTS, self.maximumConcurrency * 2)
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "websockets-curl"
        thread.start()
    }

    /// The site's lanes now: session checks and message posts waiting, calls under way.
    package var laneFigures: (waitingSessions: Int, waitingMessages: Int, running: Int) {
        state.withLockedValue { $0.lanes.figures }
    }

    /// Performs one request; never throws past its timeout.
    public func perform(_ request: HTTPClientRequest) async -> Result<HTTPClientResponse, HTTPClientError> {
        await perform(request, lane: .session)
    }

    /// Performs one request after those ahead of it in `lane`; when its turn comes and `isWanted` says no (the
    /// browser it was for has gone), it is not made and fails with ``HTTPClientError/cancelled``.
    public func perform(
        _ request: HTTPClientRequest, lane: SiteLane, isWanted: @escaping @Sendable () -> Bool = { true }
    ) async -> Result<HTTPClientResponse, HTTPClientError> {
        await withCheckedContinuation { continuation in
            submit(lane: lane, after: nil, isWanted: isWanted, request: { request }) {
                continuation.resume(returning: $0)
            }
        }
    }

    /// Queues a request and returns at once; `request` makes it when its turn comes (what waits is only what it
    /// captures), `completion` gets the outcome on the curl thread. Started in `lane` once no earlier request of
    /// `key` is under way.
    func submit(
        lane: SiteLane, after key: String?, isWanted: @escaping @Sendable () -> Bool = { true },
        request: @escaping @Sendable () -> HTTPClientRequest,
        completion: @escaping @Sendable (Result<HTTPClientResponse, HTTPClientError>) -> Void
    ) {
        let transfer = CurlTransfer(
            makeRequest: request, lane: lane, key: key, isWanted: isWanted, limit: maximumResponseBytes,
            completion: completion)
        let accepted = state.withLockedValue { state -> Bool in
            if state.stopping { return false }
            state.lanes.add(transfer, lane: lane, key: key)
            return true
        }
        if accepted {
            _ = curl_multi_wakeup(multi.pointer)
        } else {
            completion(.failure(.shutDown))
        }
    }

    /// Stops taking requests, and fails those waiting or under way at once with ``HTTPClientError/shutDown``: a
    /// stop must end whatever the site does (a site that had gone quiet held a stop for 300 events × its timeout).
    public func abandon() {
        state.withLockedValue {
            $0.stopping = true
            $0.abandoning = true
        }
        _ = curl_multi_wakeup(multi.pointer)
    }

    /// Stops taking requests, lets those under way finish, and waits for the curl thread to end.
    public func shutdown() async {
        state.withLockedValue { $0.stopping = true }
        _ = curl_multi_wakeup(multi.pointer)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyDone = finished.withLockedValue { waiters -> Bool in
                guard waiters != nil else { return true }
                waiters!.append(continuation)
                return false
            }
            if alreadyDone { continuation.resume() }
        }
    }

    private func runLoop() {
        var active: [UnsafeMutableRawPointer: CurlTransfer] = [:]
        while true {
            let (starting, stopping, abandoning) = state.withLockedValue { state -> ([CurlTransfer], Bool, Bool) in
                if state.abandoning { return (state.lanes.removeAll(), true, true) }
                var taken: [CurlTransfer] = []
                while let (transfer, _) = state.lanes.next() { taken.append(transfer) }
                return (taken, state.stopping, false)
            }
            if abandoning {
                for transfer in starting { transfer.complete(.failure(.shutDown)) }
                for (easy, transfer) in active {
                    _ = curl_multi_remove_handle(multi.pointer, easy)
                    curl_easy_cleanup(easy)
                    transfer.complete(.failure(.shutDown))
                }
                break
            }
            for transfer in starting {
                guard transfer.isWanted() else {
                    state.withLockedValue { $0.lanes.finished(transfer.lane, key: transfer.key) }
                    transfer.complete(.failure(.cancelled))
                    continue
                }
                guard let easy = transfer.makeEasyHandle() else {
                    state.withLockedValue { $0.lanes.finished(transfer.lane, key: transfer.key) }
                    transfer.complete(.failure(.transport("curl_easy_init failed")))
                    continue
                }
                active[easy] = transfer
                _ = curl_multi_add_handle(multi.pointer, easy)
            }
            var running: Int32 = 0
            _ = curl_multi_perform(multi.pointer, &running)
            var left: Int32 = 0
            var completed = false
            while let message = curl_multi_info_read(multi.pointer, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let code = message.pointee.data.result
                _ = curl_multi_remove_handle(multi.pointer, easy)
                if let transfer = active.removeValue(forKey: easy) {
                    state.withLockedValue { $0.lanes.finished(transfer.lane, key: transfer.key) }
                    transfer.finish(code: code, easy: easy)
                    completed = true
                }
                curl_easy_cleanup(easy)
            }
            if stopping && active.isEmpty && state.withLockedValue({ $0.lanes.waiting == 0 }) { break }
            // A call that ended may let a waiting one start (its slot, or its connection's next event): at once,
            // not after the poll's second.
            if completed { continue }
            _ = curl_multi_poll(multi.pointer, nil, 0, 1000, nil)
        }
        curl_multi_cleanup(multi.pointer)
        let waiters = finished.withLockedValue { waiters -> [CheckedContinuation<Void, Never>] in
            defer { waiters = nil }
            return waiters ?? []
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// The multi handle's pointer, shared with other threads only for `curl_multi_wakeup`, which libcurl documents as
/// callable from any thread; every other call on it happens on the curl thread.
private struct CurlMultiHandle: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer?
    init(_ pointer: UnsafeMutableRawPointer?) { self.pointer = pointer }
}

/// One request waiting or under way. Created by the caller, handed over through the client's locked queue, and from
/// then on touched only by the curl thread, so its mutable state needs no lock of its own. While it waits it holds
/// only what `makeRequest` captures: the request is made when its turn comes.
private final class CurlTransfer: @unchecked Sendable {
    private let makeRequest: @Sendable () -> HTTPClientRequest
    let lane: SiteLane
    let key: String?
    let isWanted: @Sendable () -> Bool
    let limit: Int
    var body: [UInt8] = []
    var overflowed = false
    private var headers: UnsafeMutablePointer<curl_slist>?
    private let completion: @Sendable (Result<HTTPClientResponse, HTTPClientError>) -> Void

    init(
        makeRequest: @escaping @Sendable () -> HTTPClientRequest, lane: SiteLane, key: String?,
        isWanted: @escaping @Sendable () -> Bool, limit: Int,
        completion: @escaping @Sendable (Result<HTTPClientResponse, HTTPClientError>) -> Void
    ) {
        self.makeRequest = makeRequest
        self.lane = lane
        self.key = key
        self.isWanted = isWanted
        self.limit = limit
        self.completion = completion
    }

    func makeEasyHandle() -> UnsafeMutableRawPointer? {
        guard let easy = curl_easy_init() else { return nil }
        // libcurl copies the URL, the headers (into the list below) and the body (COPYPOSTFIELDS): the request is
        // not kept past this call.
        let request = makeRequest()
        _ = ws_curl_setopt_string(easy, CURLOPT_URL, request.url)
        _ = ws_curl_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        let timeoutMilliseconds = max(
            1,
            Int(request.timeout.components.seconds * 1000)
                + Int(request.timeout.components.attoseconds / 1_000_000_000_000_000))
        _ = ws_curl_setopt_long(easy, CURLOPT_TIMEOUT_MS, timeoutMilliseconds)
        _ = ws_curl_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, timeoutMilliseconds)
        _ = ws_curl_setopt_long(easy, CURLOPT_TCP_KEEPALIVE, 1)
        // Only http(s): a misconfigured endpoint must not make the server read files or speak other protocols.
        _ = ws_curl_setopt_string(easy, CURLOPT_PROTOCOLS_STR, "http,https")
        if request.method == "GET" {
            _ = ws_curl_setopt_long(easy, CURLOPT_HTTPGET, 1)
        } else {
            _ = ws_curl_setopt_string(easy, CURLOPT_CUSTOMREQUEST, request.method)
        }
        if let body = request.body {
            _ = ws_curl_setopt_long(easy, CURLOPT_POSTFIELDSIZE, body.count)
            body.withUnsafeBufferPointer { buffer in
                _ = ws_curl_setopt_pointer(
                    easy, CURLOPT_COPYPOSTFIELDS,
                    UnsafeMutableRawPointer(mutating: buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!))
            }
        }
        // libcurl would otherwise wait for "100 Continue" before sending a body over 1 KiB.
        headers = curl_slist_append(headers, "Expect:")
        for (name, value) in request.headers {
            headers = curl_slist_append(headers, "\(name): \(value)")
        }
        _ = ws_curl_setopt_slist(easy, CURLOPT_HTTPHEADER, headers)
        _ = ws_curl_setopt_write(easy, CURLOPT_WRITEFUNCTION) { pointer, size, count, context in
            let transfer = Unmanaged<CurlTransfer>.fromOpaque(context!).takeUnretainedValue()
            let length = size * count
            if transfer.body.count + length > transfer.limit {
                transfer.overflowed = true
                return 0
            }
            if let pointer {
                transfer.body.append(contentsOf: UnsafeRawBufferPointer(start: pointer, count: length))
            }
            return length
        }
        _ = ws_curl_setopt_pointer(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(self).toOpaque())
        return easy
    }

    func finish(code: CURLcode, easy: UnsafeMutableRawPointer) {
        if code == CURLE_OK {
            var status = 0
            _ = ws_curl_getinfo_long(easy, CURLINFO_RESPONSE_CODE, &status)
            complete(.success(HTTPClientResponse(status: status, body: body)))
        } else if code == CURLE_OPERATION_TIMEDOUT {
            complete(.failure(.timeout))
        } else if overflowed {
            complete(.failure(.responseTooLarge))
        } else {
            complete(.failure(.transport(String(cString: curl_easy_strerror(code)))))
        }
    }

    func complete(_ result: Result<HTTPClientResponse, HTTPClientError>) {
        if let headers { curl_slist_free_all(headers) }
        headers = nil
        completion(result)
    }
}
