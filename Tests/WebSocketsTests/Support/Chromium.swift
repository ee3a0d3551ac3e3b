import Foundation
import NIOConcurrencyHelpers
import WebSockets

/// Debian's Chromium, headless, driven over the DevTools protocol: a real browser engine for the client's tests.
final class Chromium: @unchecked Sendable {
    // @unchecked: the Process is set up in init and only terminated afterwards.
    private let process: Process
    private let profile: String
    let devtools: DevTools

    static func launch() async throws -> Chromium {
        let profile = NSTemporaryDirectory() + "websockets-chromium-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: profile, withIntermediateDirectories: true)
        let process = Process()
        let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        guard let executable = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestWebSocket.Failure(description: "Chromium is not installed (apt-get install chromium)")
        }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
            "--no-default-browser-check", "--disable-extensions", "--mute-audio",
            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--user-data-dir=\(profile)",
            "--window-size=1100,760", "about:blank",
        ]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        // Chromium writes the port it chose and the browser's path to this file once it listens.
        let portFile = profile + "/DevToolsActivePort"
        var lines: [String] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while lines.count < 2 {
            guard ContinuousClock.now < deadline, process.isRunning else {
                process.terminate()
                throw TestWebSocket.Failure(description: "Chromium did not start")
            }
            try await Task.sleep(for: .milliseconds(50))
            lines = ((try? String(contentsOfFile: portFile, encoding: .utf8)) ?? "").split(separator: "\n").map(
                String.init)
        }
        let socket = try await TestWebSocket.connect(port: Int(lines[0])!, path: lines[1])
        return Chromium(process: process, profile: profile, devtools: DevTools(socket: socket))
    }

    private init(process: Process, profile: String, devtools: DevTools) {
        self.process = process
        self.profile = profile
        self.devtools = devtools
    }

    /// A new browser context: its own cookies, like another browser or a private window.
    func newContext() async throws -> String {
        let result = try await devtools.call("Target.createBrowserContext", ["disposeOnDetach": true])
        return try require_(result["browserContextId"]?.stringValue, "browserContextId")
    }

    /// A new tab in `context` showing `url`, once its document has loaded.
    func open(_ url: String, in context: String) async throws -> BrowserPage {
        let target = try await devtools.call(
            "Target.createTarget", ["url": "about:blank", "browserContextId": .string(context)])
        let targetID = try require_(target["targetId"]?.stringValue)
        let attached = try await devtools.call(
            "Target.attachToTarget", ["targetId": .string(targetID), "flatten": true])
        let page = BrowserPage(devtools: devtools, session: try require_(attached["sessionId"]?.stringValue))
        try await page.navigate(url)
        return page
    }

    /// Ends the browser at once and waits for it, so that no Chromium outlives the test that started it.
    func kill() {
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        devtools.socket.channel.close(promise: nil)
        try? FileManager.default.removeItem(atPath: profile)
    }
}

/// Unwraps or fails with a message: `#require` is for test bodies, this is for support code.
func require_<T>(_ value: T?, _ what: String = "value") throws -> T {
    guard let value else { throw TestWebSocket.Failure(description: "missing \(what)") }
    return value
}

/// One DevTools WebSocket: commands with ids, answers matched by id (events are ignored).
final class DevTools: Sendable {
    let socket: TestWebSocket
    private let nextID = NIOLockedValueBox(0)
    private let answers = NIOLockedValueBox<[Int64: JSON]>([:])

    init(socket: TestWebSocket) {
        self.socket = socket
    }

    func call(_ method: String, _ params: JSON, session: String? = nil, timeout: Duration = .seconds(20)) async throws
        -> JSON
    {
        let id = nextID.withLockedValue { id -> Int64 in
            id += 1
            return Int64(id)
        }
        var command: [String: JSON] = ["id": .int(id), "method": .string(method), "params": params]
        if let session { command["sessionId"] = .string(session) }
        try await socket.send(text: JSON.object(command).serialized())
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let answer = answers.withLockedValue({ $0.removeValue(forKey: id) }) {
                if let error = answer["error"] {
                    throw TestWebSocket.Failure(description: "\(method): \(error.serialized())")
                }
                return answer["result"] ?? .null
            }
            guard case .text(let text) = try await socket.next(timeout: deadline - ContinuousClock.now) else {
                continue
            }
            let message = try JSON(parsing: text)
            if let answerID = message["id"]?.intValue {
                answers.withLockedValue { $0[answerID] = message }
            }
        }
        throw TestWebSocket.Failure(description: "\(method): no answer within \(timeout)")
    }
}

/// A tab: navigate, evaluate JavaScript (awaiting promises), wait for a condition, take a screenshot.
struct BrowserPage: Sendable {
    let devtools: DevTools
    let session: String

    func navigate(_ url: String) async throws {
        _ = try await devtools.call("Page.navigate", ["url": .string(url)], session: session)
        try await waitFor("document.readyState === 'complete' && location.href !== 'about:blank'")
    }

    /// The value of `expression` (a promise is awaited); a thrown exception fails the call.
    @discardableResult
    func evaluate(_ expression: String) async throws -> JSON {
        let result = try await devtools.call(
            "Runtime.evaluate", ["expression": .string(expression), "awaitPromise": true, "returnByValue": true],
            session: session)
        if let exception = result["exceptionDetails"] {
            throw TestWebSocket.Failure(description: "JavaScript failed: \(exception.serialized())")
        }
        return result["result"]?["value"] ?? .null
    }

    /// Polls until `expression` is truthy.
    func waitFor(_ expression: String, timeout: Duration = .seconds(15)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if (try? await evaluate("!!(\(expression))")) == .bool(true) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestWebSocket.Failure(description: "the page never satisfied: \(expression)")
    }

    func screenshot(to path: String) async throws {
        let result = try await devtools.call("Page.captureScreenshot", ["format": "png"], session: session)
        let data = try require_(Data(base64Encoded: try require_(result["data"]?.stringValue, "screenshot")))
        try data.write(to: URL(fileURLWithPath: path))
    }
}
