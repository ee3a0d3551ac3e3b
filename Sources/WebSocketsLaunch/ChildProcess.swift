import CLaunch
import Foundation
import WebSockets

/// Starting programs with posix_spawn: for the supervisor's child and for web start's detached server.
public enum ChildProcess {
    /// How a child is started.
    public struct Options: Sendable {
        /// The program's path.
        public var executable: String
        /// Its arguments, the program's name first.
        public var arguments: [String]
        /// Its whole environment (nothing is inherited implicitly).
        public var environment: [String: String]
        /// A new session (`setsid`): the child outlives its parent's session and terminal.
        public var newSession = false
        /// A new process group led by the child, so that a signal can reach it and everything it starts.
        public var newProcessGroup = false
        /// Where standard output and standard error go (appended), or `nil` to inherit them.
        public var outputPath: String?

        /// Options for `executable` with `arguments` and `environment`.
        public init(executable: String, arguments: [String], environment: [String: String]) {
            self.executable = executable
            self.arguments = arguments
            self.environment = environment
        }
    }

    /// Why a child could not be started.
    public struct SpawnError: Error, CustomStringConvertible {
        /// What failed.
        public let description: String
    }

    /// Starts a child: standard input from /dev/null, no descriptors but 0–2 inherited, default signal handling
    /// and an empty signal mask (whatever the parent ignores or blocks).
    public static func spawn(_ options: Options) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let path = options.outputPath {
            posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        // Sockets and files of the parent (the web service's listening socket among them) stay with the parent.
        posix_spawn_file_actions_addclosefrom_np(&actions, 3)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var flags = Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)
        if options.newSession { flags |= WS_POSIX_SPAWN_SETSID }
        if options.newProcessGroup && !options.newSession {
            flags |= Int16(POSIX_SPAWN_SETPGROUP)
            posix_spawnattr_setpgroup(&attributes, 0)
        }
        posix_spawnattr_setflags(&attributes, flags)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGPIPE, SIGCHLD, SIGQUIT] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)

        let argv = options.arguments.map { strdup($0) } + [nil]
        let envp = options.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid = pid_t()
        let result = posix_spawn(&pid, options.executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw SpawnError(description: "posix_spawn \(options.executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    /// The path of the running executable, or `nil` when it is gone (deleted or replaced since it started).
    public static func currentExecutable() -> String? {
        guard let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"),
            !path.hasSuffix(" (deleted)"), FileManager.default.isExecutableFile(atPath: path)
        else { return nil }
        return path
    }
}
