package import ArgumentParser

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failure at run time rather than a malformed flag: a port already taken, a file or directory
/// that cannot be opened, Redis unreachable, an archive line that does not parse. ``AsyncParsableCommand/mainWithOneLineErrors()`` prints it as
/// `Error: <description>` and exits with status 1 (a bad flag exits with 64).
package struct CommandFailure: Error, CustomStringConvertible {
    package let description: String

    /// A failure that `description` explains in one line.
    package init(_ description: String) {
        self.description = description
    }
}

extension AsyncParsableCommand {
    /// Parses the command line, runs the command it names and exits — as `main()` does, except that
    /// an error prints one line on standard error, `Error: <what is wrong>`, without the usage text
    /// that `main()` prints after it (and which names the root command, whichever subcommand failed).
    /// A bad flag exits with status 64 (`EX_USAGE`), a ``CommandFailure`` or any other error with 1;
    /// `--help` and `--version` print as usual.
    ///
    /// SIGPIPE is ignored first, as servers do: hiredis writes with `write(2)`, and a write to a
    /// unix-socket connection that Redis closed (a restart) would otherwise end the process with
    /// everything it holds. The write fails with `EPIPE` instead, which is handled as a lost connection.
    /// So are SIGHUP, SIGUSR1 and SIGUSR2 (see ``IgnoredSignals``), before anything else can run.
    package static func mainWithOneLineErrors() async -> Never {
        _ = signal(SIGPIPE, SIG_IGN)
        IgnoredSignals.ignore()
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            exit(withError: nil)
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version
            var message = unknownCommandMessage(CommandLine.arguments.dropFirst().first) ?? self.message(for: error)
            if let hint = dashValueHint(message, arguments: Array(CommandLine.arguments.dropFirst())) { message += hint }
            if !message.isEmpty {
                let line = "Error: " + message.split(separator: "\n", omittingEmptySubsequences: true).joined(separator: " ") + "\n"
                _ = line.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
            }
            exit(withError: code)  // an ExitCode prints nothing more
        }
    }

    /// For a first argument that is neither a flag nor one of this command's subcommands
    /// (`pixeld bogus`, `pixeld ingset`): a message that says so and names the commands there are,
    /// instead of ArgumentParser's "Unexpected argument 'bogus'". `nil` otherwise, and for commands
    /// without subcommands or with a default one (`pixeld-ingest`, whose arguments are ingest's).
    package static func unknownCommandMessage(_ first: String?) -> String? {
        let names = configuration.subcommands.compactMap { $0.configuration.commandName }
        guard !names.isEmpty, configuration.defaultSubcommand == nil, let first, !first.hasPrefix("-"), first != "help", !names.contains(first) else { return nil }
        let root = configuration.commandName ?? "the command"
        return "unknown command '\(first)'; the commands are \(names.joined(separator: ", ")) (see \(root) --help)"
    }

    /// For ArgumentParser's "Missing value for '--flag <value>'" when the argument after `--flag` begins
    /// with a single '-' (`--program -x`, `--unix -sock`; a lone '-' is taken as a value already): it
    /// took that argument for a flag, and the message alone reads as if no value had been given.
    /// The hint says how to give one: ` (a value that begins with '-' is written --program=-x)`.
    /// `nil` otherwise — a value truly missing, or followed by a long flag (`--program --udp …`).
    package static func dashValueHint(_ message: String, arguments: [String]) -> String? {
        let prefix = "Missing value for '"
        guard message.hasPrefix(prefix) else { return nil }
        let flag = String(message.dropFirst(prefix.count).prefix { $0 != " " && $0 != "'" })
        // Any use of the flag (`--udp a --udp -x`: a repeatable flag's first use has its value).
        let next = zip(arguments, arguments.dropFirst()).first { given, next in
            given == flag && next.hasPrefix("-") && !next.hasPrefix("--") && next.count > 1
        }?.1
        guard flag.hasPrefix("--"), let next else { return nil }
        return " (a value that begins with '-' is written \(flag)=\(next))"
    }
}
