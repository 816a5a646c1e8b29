import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// SIGINT and SIGTERM for a short command that must stop only where what it leaves behind is whole
/// (`pixeld replay`, between two of its steps): after ``record()`` the first one no longer ends the
/// process but is noted, and the command asks ``received`` at each point where it may stop. A
/// second one ends the process as usual (a Redis call that waits out a stall would otherwise hold a
/// Ctrl-C for the whole command timeout, again at each signal).
package enum Interruption {
    private static let signalNumber = Atomic<Int32>(0)

    /// From now on the first SIGINT or SIGTERM is noted instead of ending the process. (The handler
    /// does only what is safe in one: an atomic exchange, and for a second signal `signal` and
    /// `raise`.)
    package static func record() {
        _ = signalNumber.load(ordering: .relaxed)  // initialised here, not first in the handler
        for number in [SIGINT, SIGTERM] {
            _ = signal(number) { received in
                if Interruption.signalNumber.exchange(received, ordering: .relaxed) != 0 {
                    _ = signal(received, SIG_DFL)
                    _ = raise(received)
                }
            }
        }
    }

    /// The name of the signal received since ``record()``, or `nil`.
    package static var received: String? {
        switch signalNumber.load(ordering: .relaxed) {
        case 0: nil
        case SIGINT: "SIGINT"
        case SIGTERM: "SIGTERM"
        case let other: "signal \(other)"
        }
    }
}
