import ArgumentParser
import Foundation
import WebSockets
import WebSocketsCluster
import WebSocketsSite

/// `websockets send <action> [<details>] --to ... [--target ...]`: a send through a running server.
struct SendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "send", abstract: "Send a message to browsers through a running server.",
        discussion: SettingsFlags.help)

    @Argument(help: "The action the browsers receive.")
    var action: String

    @Argument(help: "The details, as JSON (text that is not JSON is sent as a string).")
    var details: String?

    @Option(help: "Whom: all, registered, users, groups, filter, sessions or connections.")
    var to: String = "all"

    @Option(help: "The target as JSON: a user id, [ids], or [property, value] for filter.")
    var target: String?

    @Option(help: "The server's send address (default http://127.0.0.1:<listen_port>/WebSockets/send).")
    var server: String?

    @OptionGroup var options: SettingsOptions

    /// `--server`, else a live server of the cluster's pool, else this machine's `listen_port`.
    private func sendAddress(_ settings: Settings) async throws -> String {
        if let server { return server }
        if ClusterMode(settings: settings).findsServersInThePool {
            let live = try await ClusterPool.liveServers(settings: settings)
            if let address = live.first { return ClusterPool.sendURL(forServerAddress: address) }
            FileHandle.standardError.write(
                Data("no live server in the pool; trying 127.0.0.1:\(settings.listenPort)\n".utf8))
        }
        return "http://127.0.0.1:\(settings.listenPort)/WebSockets/send"
    }

    func run() async throws {
        let (settings, _) = try options.loader.load(generateKey: false)
        guard !settings.securityKey.isEmpty else {
            throw ValidationError(
                "No security key: set security_key in the settings file, WEBSOCKETS_SECURITY_KEY or --security-key.")
        }
        guard let sendTo = SendTo(name: to) else {
            throw ValidationError("--to must be one of: \(SendTo.allCases.map(\.name).joined(separator: ", "))")
        }
        // JSON details go as written (key order, number spelling); other text as a string.
        let rawDetails: RawJSON =
            details.map { (try? RawJSON(validating: Array($0.utf8))) ?? RawJSON(.string($0)) } ?? .null
        var targetValue = JSON.null
        if let target {
            do {
                targetValue = try JSON(parsing: target)
            } catch {
                targetValue = .string(target)
            }
        }
        let body: [UInt8]
        do {
            // Checked by the same rules as the server's before it is posted.
            let text = Send(action: action, rawDetails: rawDetails, sendTo: sendTo, target: targetValue).encoded()
            _ = try Send.list(parsing: text)
            body = text
        } catch {
            throw ValidationError(error.description)
        }
        let url = try await sendAddress(settings)
        let client = CurlClient(maximumConcurrency: 1)
        let result = await client.perform(
            HTTPClientRequest(
                method: "POST", url: url,
                headers: [("Content-Type", "application/json"), ("X-WebSockets-Key", settings.securityKey)],
                body: body, timeout: .seconds(settings.siteTimeout)))
        await client.shutdown()
        switch result {
        case .success(let response) where response.status == 202:
            print(String(decoding: response.body, as: UTF8.self))
        case .success(let response):
            FileHandle.standardError.write(
                Data("send failed: HTTP \(response.status) \(String(decoding: response.body, as: UTF8.self))\n".utf8))
            throw ExitCode(1)
        case .failure(let error):
            FileHandle.standardError.write(Data("send failed: \(url): \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
