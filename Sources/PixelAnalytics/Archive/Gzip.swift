import CPixeldSystem

#if canImport(Glibc)
import Glibc
#endif

/// The system's gzip, which the archive runs to compress a closed day (``ArchiveWriter``) and to read
/// a compressed one (``ArchiveReader``).
enum Gzip {
    /// `/usr/bin/gzip` or `/bin/gzip`; `nil` when neither is there.
    static var path: String? { ["/usr/bin/gzip", "/bin/gzip"].first { access($0, X_OK) == 0 } }

    /// Starts gzip with `arguments` and the descriptors `actions` sets up; its pid, or `nil` when it
    /// could not start. The child gets default dispositions for every signal and no blocked signals:
    /// pixeld ignores SIGPIPE, SIGHUP, SIGUSR1, SIGUSR2 and SIGXFSZ, and the service's threads ignore
    /// or block SIGTERM and SIGINT, which a child would otherwise inherit (and then outlive a stop). After `actions`, every descriptor from 3 up
    /// is closed in the child: it keeps its stdin, stdout and stderr only, not what this process has
    /// open without close-on-exec, nor a socket another thread has just made (a hiredis connection
    /// is made close-on-exec only after it is connected).
    static func spawn(_ arguments: [String], actions: inout posix_spawn_file_actions_t) -> pid_t? {
        guard let gzip = path else { return nil }
        // Last: file actions run in order, and the caller's dup2s may take a descriptor >= 3.
        guard cpixeld_spawn_close_from(&actions, 3) == 0 else { return nil }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        // All of them, so that a signal pixeld comes to ignore later is not passed on unnoticed.
        for signal in 1..<Int32(32) where signal != SIGKILL && signal != SIGSTOP { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([gzip] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        return posix_spawn(&pid, gzip, &actions, &attributes, argv, environ) == 0 ? pid : nil
    }
}
