import Foundation
import NIOCore
import NIOPosix
import WebSockets

/// The built `websockets` executable, run as a real process.
final class ServerProcess: @unchecked Sendable {
    // @unchecked: the Process and pipes are set up before the tests read them, then only read.
    let process: Process
    let output: Pipe
    let directory: String

    static var executable: URL {
        let fromTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        var candidates = [fromTests.appendingPathComponent("websockets")]
        if fromTests.lastPathComponent.hasSuffix(".xctest") {
            candidates.append(fromTests.deletingLastPathComponent().appendingPathComponent("websockets"))
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/websockets"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!
    }

    /// A free port on loopback (bound, read, released).
    static func freePort() throws -> Int {
        let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).wait()
        let port = channel.localAddress!.port!
        try channel.close().wait()
        return port
    }

    /// Starts `websockets <arguments>` in `directory`.
    init(_ arguments: [String], directory: String, environment: [String: String] = [:]) throws {
        self.directory = directory
        process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        var merged = ProcessInfo.processInfo.environment
        for (name, value) in environment { merged[name] = value }
        process.environment = merged
        output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
    }

    /// Runs `websockets <arguments>` to its end; its exit status and standard output.
    static func run(_ arguments: [String], directory: String) throws -> (status: Int32, output: String) {
        let process = try ServerProcess(arguments, directory: directory)
        process.process.waitUntilExit()
        let data = process.output.fileHandleForReading.readDataToEndOfFile()
        return (process.process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "websockets-test-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}
