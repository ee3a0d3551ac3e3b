import Dispatch
import NIOConcurrencyHelpers
import WebSockets

/// Publishes at a fixed rate over HTTP with several requests in flight, as a site's pages would: a publisher that
/// waited for each answer would never let sends pile up at the server.
struct Publisher {
    let curl: CurlClient
    let inFlightLimit: Int

    /// Publishes `rate` times a second for `seconds`; `request` makes the `index`th request, stamped now. Returns
    /// how many were sent (fewer than asked when the server answers too slowly) and how many failed.
    func run(rate: Double, seconds: Double, request: @escaping @Sendable (Int) -> HTTPClientRequest) async -> (
        sent: Int, failed: Int
    ) {
        let pacer = SendPacer(rate: rate, seconds: seconds)
        let inFlight = NIOLockedValueBox(0)
        let failed = NIOLockedValueBox(0)
        var sent = 0
        await withTaskGroup(of: Void.self) { group in
            while sent < pacer.total {
                guard let due = pacer.due() else { break }
                while sent < due, inFlight.withLockedValue({ $0 }) < inFlightLimit {
                    inFlight.withLockedValue { $0 += 1 }
                    let index = sent
                    group.addTask {
                        let result = await curl.perform(request(index))
                        if case .success(let response) = result, response.status < 300 {
                        } else {
                            failed.withLockedValue { $0 += 1 }
                        }
                        inFlight.withLockedValue { $0 -= 1 }
                    }
                    sent += 1
                }
                try? await Task.sleep(for: .microseconds(500))
            }
            await group.waitForAll()
        }
        return (sent, failed.withLockedValue { $0 })
    }
}
