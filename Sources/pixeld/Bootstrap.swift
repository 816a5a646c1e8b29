import Logging

/// The one place that bootstraps the logging system (and, later, metrics) for the process.
enum Bootstrap {
    /// Sends logs to standard error at `level`, and returns the root logger.
    static func logging(level: Logger.Level, label: String) -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: label)
        logger.logLevel = level
        return logger
    }
}
