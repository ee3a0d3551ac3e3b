/// The security key: generation and comparison.
public enum SecurityKey {
    /// 56 hexadecimal characters (224 bits) from the system's cryptographic source (`getrandom` on Linux).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<56).map { _ in digits[Int(generator.next() % 16)] })
    }

    /// Compares a presented key with the configured one in time that does not depend on where they differ, so the
    /// key cannot be guessed a character at a time. An empty configured key matches nothing.
    public static func matches(_ presented: some StringProtocol, _ expected: String) -> Bool {
        matches(utf8: presented.utf8, expected)
    }

    /// ``matches(_:_:)`` for a key given as its UTF-8 bytes (a header's value still in the request's bytes).
    public static func matches(utf8 presented: some Sequence<UInt8>, _ expected: String) -> Bool {
        // Both keys' bytes are walked in place: copied into arrays, the two checks of a send were four of its
        // allocations.
        var expectedBytes = expected.utf8.makeIterator()
        var presentedBytes = presented.makeIterator()
        var difference: UInt8 = 0
        var expectedCount = 0
        var shorter = false
        while let byte = expectedBytes.next() {
            expectedCount += 1
            if let next = presentedBytes.next() {
                difference |= next ^ byte
            } else {
                shorter = true
            }
        }
        guard expectedCount > 0 else { return false }
        // A longer presented key differs too (its extra bytes are not compared one by one: the configured key's
        // length is not the secret).
        if shorter || presentedBytes.next() != nil { difference |= 1 }
        return difference == 0
    }
}
