import Foundation
import NIOCore
import Testing

@testable import WebSocketsConnection
@testable import WebSocketsFuzzChecks

/// The fuzzers' kept inputs (Fuzz/corpus/<target>: the seeds, what the fuzzers found that reached new code, and
/// every finding once fixed) replayed through the same invariants the fuzzers assert, in the ordinary suite: a
/// finding fixed stays fixed without a fuzzer.
@Suite struct FuzzCorpusTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func inputs(of target: FuzzTarget) -> [URL] {
        let folder = root.appendingPathComponent("corpus").appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.sorted().map { folder.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases) func everyKeptInputHoldsTheInvariant(target: FuzzTarget) async throws {
        let inputs = Self.inputs(of: target)
        #expect(!inputs.isEmpty, "no corpus for \(target.rawValue): python3 Fuzz/seed.py")
        if target == .http { try await HTTPHeadCheck.prepare() }
        // Off the tasks' threads: the HTTP target waits on a blocking socket.
        let findings = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var findings: [String] = []
                for input in inputs {
                    guard let data = FileManager.default.contents(atPath: input.path) else { continue }
                    do { try target.check([UInt8](data)) } catch {
                        findings.append("\(input.lastPathComponent): \(error)")
                    }
                }
                continuation.resume(returning: findings)
            }
        }
        #expect(findings.isEmpty, "\(findings.joined(separator: "\n"))")
    }

    /// The script fuzzes every target there is.
    @Test func theScriptNamesEveryTarget() throws {
        let script = try String(contentsOf: Self.root.appendingPathComponent("run.sh"), encoding: .utf8)
        let line = try #require(script.split(separator: "\n").first { $0.hasPrefix("all_targets=(") })
        let names = line.dropFirst("all_targets=(".count).dropLast().split(separator: " ").map(String.init)
        #expect(names == FuzzTarget.allCases.map(\.rawValue))
    }

    /// The checks catch what they are for: each rule is given the wrong answer on purpose, so that a check that
    /// cannot fail would be noticed.
    @Test func theChecksRefuseWrongAnswers() {
        let refused: [InboundEvent] = [
            .message(ByteBuffer(bytes: [0x5B, 0xC0, 0x80, 0x5D])),  // not UTF-8
            .message(ByteBuffer(repeating: 0x20, count: 1001)),  // over the limit
            .inflatedMessage(ByteBuffer(string: "[]"), compressedBytes: 4),  // without permessage-deflate
            .ping(ByteBuffer(repeating: 0, count: 126)),
            .close(code: 1005),
        ]
        for event in refused {
            #expect(throws: FuzzFinding.self) { try FrameStreamCheck.allowed(event, limit: 1000, inflates: false) }
        }
        #expect(throws: Never.self) {
            try FrameStreamCheck.allowed(.message(ByteBuffer(string: "[\"é\"]")), limit: 1000, inflates: false)
        }
        #expect(!JSONCheck.same(.int(1), .int(2)))
        #expect(JSONCheck.same(.int(3), .double(3)))
        #expect(JSONCheck.same(.double(.infinity), .null))
        #expect(!JSONCheck.same(.string("1"), .int(1)))
        #expect(!JSONCheck.same(.object(["a": .int(1)]), .object(["b": .int(1)])))
    }
}
