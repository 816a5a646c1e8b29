import ArgumentParser
import PixeldCLI
import PixeldIngest

/// `pixeld-ingest`: `pixeld ingest` as a program of its own, which `pixeld ingest` runs when it is
/// installed next to `pixeld`. It links only what ingest needs — no Foundation, SwiftNIO or
/// swift-crypto — so the daemon that runs on every web host keeps a small resident set. The command
/// is the same type as in `pixeld`, so flags, environment variables, help and errors are identical
/// (`pixeld-ingest --udp …` works too: `ingest` is the default).
@main
struct PixeldIngestProgram: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pixeld",
        abstract: "The ingest daemon of pixeld (what `pixeld ingest` runs).",
        version: pixeldVersion,
        subcommands: [IngestCommand.self],
        defaultSubcommand: IngestCommand.self
    )

    static func main() async {
        // The program has one command: its help is that command's flags, not a list of one subcommand.
        if ["--help", "-h", "help"].contains(CommandLine.arguments.dropFirst().first), CommandLine.arguments.count == 2 {
            print(Self.helpMessage(for: IngestCommand.self))
            return
        }
        await mainWithOneLineErrors()
    }
}
