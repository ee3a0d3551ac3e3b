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
        if let result = presented.utf8.withContiguousStorageIfAvailable({
            matches(bytes: UnsafeRawBufferPointer($0), expected)
        }) {
            return result
        }
        return Array(presented.utf8).withUnsafeBytes { matches(bytes: $0, expected) }
    }

    /// ``matches(_:_:)`` for a key given as its UTF-8 bytes (a header's value still in the request's bytes). Not
    /// generic: walked as a generic `Sequence` from another module (unspecialised), the comparison was 23% of a
    /// targeted send's samples.
    public static func matches(bytes presented: UnsafeRawBufferPointer, _ expected: String) -> Bool {
        var expected = expected
        return expected.withUTF8 { expected in
            // Every byte of the configured key is compared, whatever the presented one holds: the time does not
            // depend on where they differ.
            guard !expected.isEmpty else { return false }
            var difference: UInt8 = presented.count == expected.count ? 0 : 1
            let count = presented.count
            for index in 0..<expected.count {
                difference |= (index < count ? presented[index] : 0) ^ expected[index]
            }
            return difference == 0
        }
    }
}
