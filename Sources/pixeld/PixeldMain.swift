import ArgumentParser
import CPixeldSystem
import PixeldCLI
import PixeldIngest

#if canImport(Glibc)
import Glibc
#endif

/// The entry point. `pixeld ingest …` becomes the `pixeld-ingest` program installed next to this one
/// (`/proc/self/exe`'s directory, symbolic links resolved): the same process id, arguments and
/// environment, but a 15 MB program instead of this one's 72 MB (the dashboard's SwiftNIO and
/// Hummingbird, swift-crypto, Foundation), which is most of the ingest daemon's resident memory. The
/// process's name (`argv[0]`, `comm`) becomes `pixeld-ingest`. Without `pixeld-ingest` alongside,
/// `pixeld` runs the same command itself; when it is there but cannot be run, it says so on standard
/// error first.
@main
enum PixeldMain {
    static func main() async {
        if CommandLine.arguments.dropFirst().first == IngestCommand.configuration.commandName {
            if cpixeld_exec_sibling("pixeld-ingest", CommandLine.unsafeArgv) != 0, errno != ENOENT, errno != ELOOP {
                let line = "pixeld: could not run pixeld-ingest next to pixeld (\(String(cString: strerror(errno)))); running ingest in this process\n"
                _ = line.utf8CString.withUnsafeBufferPointer { write(STDERR_FILENO, $0.baseAddress, $0.count - 1) }
            }
        }
        await Pixeld.mainWithOneLineErrors()
    }
}
