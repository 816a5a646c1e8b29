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
        await mainWithOneLineErrors()
    }
}
