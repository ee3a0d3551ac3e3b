import Dispatch

/// The pacing of both publishers: how many sends a publisher offering `rate` a second for `seconds` may have made
/// by now.
struct SendPacer {
    let rate: Double
    let seconds: Double
    private let start = DispatchTime.now().uptimeNanoseconds

    init(rate: Double, seconds: Double) {
        self.rate = rate
        self.seconds = seconds
    }

    /// The sends of the whole window.
    var total: Int { Int(rate * seconds) }

    /// How many may have been sent by now; `nil` once the window and half of it again are over (a peer that slow
    /// is not waited for).
    func due() -> Int? {
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if elapsed > seconds * 1.5 { return nil }
        return min(total, Int(elapsed * rate) + 1)
    }
}
