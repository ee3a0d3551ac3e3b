/// Runs `body`, then `teardown`, and awaits it whether `body` returned or threw: a test ends once what it started
/// has stopped (a `defer { Task { ... } }` left the stop running while the next test began).
func withTeardown<T>(_ teardown: () async -> Void, _ body: () async throws -> T) async rethrows -> T {
    let value: T
    do {
        value = try await body()
    } catch {
        await teardown()
        throw error
    }
    await teardown()
    return value
}
