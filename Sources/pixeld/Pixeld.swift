import ArgumentParser
import CPixeldSystem
import PixeldCLI
import PixeldIngest

/// `pixeld`: self-hosted, privacy-respecting pixel tracking on nginx, syslog and Redis.
struct Pixeld: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pixeld",
        abstract: "Self-hosted pixel tracking: nginx syslog → Redis lists → privacy-safe analytics.",
        discussion: """
            Every flag can also be set with an environment variable: PIXELD_ followed by the flag's name \
            in upper case with dashes as underscores (--redis → PIXELD_REDIS, --max-message-bytes → \
            PIXELD_MAX_MESSAGE_BYTES). Repeatable flags take several values separated by spaces. A flag on \
            the command line wins over the environment.
            """,
        version: pixeldVersion,
        subcommands: [IngestCommand.self, ConsumeCommand.self, ReportCommand.self, ReplayCommand.self, ServeCommand.self]
    )
}

/// The entry point. `pixeld ingest …` becomes the `pixeld-ingest` program installed next to this one
/// (same process, same arguments): the long-running ingest daemon then maps a 15 MB program instead
/// of this one's 72 MB (the dashboard's SwiftNIO and Hummingbird, swift-crypto, Foundation), which
/// is most of its resident memory. Without `pixeld-ingest` alongside, `pixeld` runs the same
/// command itself.
@main
enum Main {
    static func main() async {
        if CommandLine.arguments.dropFirst().first == IngestCommand.configuration.commandName {
            _ = cpixeld_exec_sibling("pixeld-ingest", CommandLine.unsafeArgv)
        }
        await Pixeld.main()
    }
}
