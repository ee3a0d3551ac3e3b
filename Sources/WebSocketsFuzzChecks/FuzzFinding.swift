/// An invariant a fuzz input broke: what was expected and what happened. The fuzzer stops on it and keeps the input
/// (`websockets-fuzz`); the corpus test fails on it with the file's name.
package struct FuzzFinding: Error, CustomStringConvertible {
    /// The invariant and the values that broke it.
    package let description: String

    /// A finding described by `description`.
    package init(_ description: String) {
        self.description = description
    }
}

/// Throws a finding described by `description()` unless `condition` holds.
func expect(_ condition: Bool, _ description: @autoclosure () -> String) throws(FuzzFinding) {
    if !condition { throw FuzzFinding(description()) }
}
