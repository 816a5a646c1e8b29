import ArgumentParser
import PixeldCLI
import PixeldIngest

/// `pixeld`: self-hosted, privacy-respecting pixel tracking on nginx, syslog and Redis.
struct Pixeld: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pixeld",
        abstract: "Self-hosted pixel tracking: nginx syslog → Redis lists → privacy-safe analytics.",
        discussion: """
            The flags of ingest, consume and serve, and --redis and --log-level of every command, can also \
            be set with an environment variable: PIXELD_ followed by the flag's name in upper case with \
            dashes as underscores (--redis → PIXELD_REDIS, --max-message-bytes → PIXELD_MAX_MESSAGE_BYTES); \
            each flag's help names it. Repeatable flags take several values separated by spaces. A flag on \
            the command line wins over the environment. A bad flag fails at start with one line (exit status \
            64), a failure at run time with one line too (status 1).
            """,
        version: pixeldVersion,
        subcommands: [IngestCommand.self, ConsumeCommand.self, ReportCommand.self, ReplayCommand.self, ServeCommand.self]
    )
}
