/// What the ingest service needs of every listener, datagram or stream: start, stop with a drain, totals.
public protocol SyslogListener: AnyObject, Sendable {
    /// Totals for metrics and tests.
    var statistics: ListenerStatistics { get }
    /// Starts receiving on the listener's own thread.
    func start()
    /// Stops receiving, hands over what the socket already holds, and returns when the thread is done.
    func stop() async
}

extension DatagramListener: SyslogListener {}
extension StreamListener: SyslogListener {}
