import Dispatch
import Foundation
import Logging
import WebSocketsFuzzChecks

// One executable for every target: built with `-sanitize=fuzzer,address -DFUZZING` it is a libFuzzer binary that
// fuzzes the target named by WEBSOCKETS_FUZZ_TARGET (Fuzz/run.sh); built as usual it replays inputs (files or
// folders of them) through a target's check, which is how a finding is reproduced without the fuzzer.

#if FUZZING
    /// The target this process fuzzes.
    private let target: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["WEBSOCKETS_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fatalError(
                "WEBSOCKETS_FUZZ_TARGET must be one of \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    /// libFuzzer's set-up, before the first input: the logs are silenced (a refused input is normal here, and each
    /// would be a line) and the HTTP target's server is started.
    @_cdecl("LLVMFuzzerInitialize")
    public func fuzzerInitialize(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
    ) -> CInt {
        LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }
        if target == .http { FuzzReplay.waitFor { try await HTTPHeadCheck.prepare() } }
        return 0
    }

    /// libFuzzer's driver (compiler-rt's FuzzerDriver.cpp).
    @_silgen_name("LLVMFuzzerRunDriver")
    func runFuzzerDriver(
        _ argc: UnsafeMutablePointer<CInt>,
        _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ test: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt

    /// The process's entry: SwiftPM links an executable's `main` to `<module>_main`, so libFuzzer's own `main` is
    /// not the one that runs; this hands the arguments to libFuzzer's driver as its `main` would.
    @_cdecl("websockets_fuzz_main")
    public func fuzzMain(
        _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    ) -> CInt {
        var count = argc
        var arguments: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = argv
        return runFuzzerDriver(&count, &arguments) { data, size in fuzzerTestOneInput(data, size) }
    }

    /// One input: a broken invariant stops the fuzzer, which keeps the input as `crash-<sha1>`.
    @_cdecl("LLVMFuzzerTestOneInput")
    public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
        let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
        do {
            try target.check(bytes)
        } catch {
            fatalError("\(target.rawValue): \(error)")
        }
        return 0
    }
#else
    @main struct FuzzReplayCommand {
        static func main() {
            let arguments = CommandLine.arguments.dropFirst()
            guard let name = arguments.first, let target = FuzzTarget(rawValue: name) else {
                print(
                    "usage: websockets-fuzz TARGET FILE|FOLDER...\n"
                        + "TARGET: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
                exit(2)
            }
            if target == .http { FuzzReplay.waitFor { try await HTTPHeadCheck.prepare() } }
            var failures = 0
            var count = 0
            for path in FuzzReplay.files(in: Array(arguments.dropFirst())) {
                count += 1
                guard let data = FileManager.default.contents(atPath: path) else { continue }
                do {
                    try target.check([UInt8](data))
                } catch {
                    failures += 1
                    print("\(path): \(error)")
                }
            }
            print("\(target.rawValue): \(count) inputs, \(failures) findings")
            exit(failures == 0 ? 0 : 1)
        }
    }
#endif

/// What both modes share.
enum FuzzReplay {
    /// Runs `body` to its end from synchronous code (libFuzzer's callbacks, the replay's main), on a task.
    static func waitFor(_ body: @escaping @Sendable () async throws -> Void) {
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await body() } catch { fatalError("\(error)") }
            done.signal()
        }
        done.wait()
    }

    /// The files named by `paths`, a folder's files sorted by name.
    static func files(in paths: [String]) -> [String] {
        paths.flatMap { path -> [String] in
            var folder: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &folder), folder.boolValue else {
                return [path]
            }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            return names.sorted().map { path + "/" + $0 }
        }
    }
}
