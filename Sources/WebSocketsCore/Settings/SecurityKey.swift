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
        let a = Array(presented.utf8)
        let b = Array(expected.utf8)
        guard !b.isEmpty else { return false }
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<b.count {
            difference |= (index < a.count ? a[index] : 0) ^ b[index]
        }
        return difference == 0
    }
}
