import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM for a short command that must stop only where what it leaves behind is whole
/// (`pixeld replay`, between two of its steps): after ``record()`` they no longer end the process
/// but are noted, and the command asks ``received`` at each point where it may stop.
package enum Interruption {
    private static let signalNumber = Atomic<Int32>(0)

    /// From now on SIGINT and SIGTERM are noted instead of ending the process. (An atomic store is
    /// all the handler does: safe in a signal handler.)
    package static func record() {
        for number in [SIGINT, SIGTERM] {
            _ = signal(number) { Interruption.signalNumber.store($0, ordering: .relaxed) }
        }
    }

    /// The name of the signal received since ``record()`` (the last, if several), or `nil`.
    package static var received: String? {
        switch signalNumber.load(ordering: .relaxed) {
        case 0: nil
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case let other: "signal \(other)"
        }
    }
}
