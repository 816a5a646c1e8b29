package import ArgumentParser
package import Logging
package import RespBridge

/// Flags every subcommand shares: where Redis is and how much to log.
package struct GlobalOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Redis to use: redis://[[user]:password@]host[:port][/db] or unix:///path/redis.sock[?db=N&user=U&password=P]; percent-encode special characters in user and password. Env: PIXELD_REDIS.",
            valueName: "url"
        )
    )
    /// `--redis`, as given (``redisConfiguration()`` resolves it).
    package var redis: String?

    @Option(help: ArgumentHelp("trace, debug, info, notice, warning, error or critical. Env: PIXELD_LOG_LEVEL.", valueName: "level"))
    /// `--log-level`, as given (``level()`` checks it).
    package var logLevel: String?

    /// For ArgumentParser: the flags are set from the command line afterwards.
    package init() {}

    /// The Redis configuration, from the flag, the environment or the default.
    package func redisConfiguration() throws -> RedisConfiguration {
        let url = Environment.resolve(redis, flag: "redis", default: "redis://127.0.0.1:6379/0")
        do {
            return try RedisConfiguration(url: url)
        } catch {
            throw ValidationError("--redis: \(error.message)")
        }
    }

    /// The log level, from the flag, the environment or `info`.
    package func level() throws -> Logger.Level {
        let text = Environment.resolve(logLevel, flag: "log-level", default: "info")
        guard let level = Logger.Level(rawValue: text.lowercased()) else {
            throw ValidationError("--log-level: unknown level '\(text)' (use trace, debug, info, notice, warning, error or critical)")
        }
        return level
    }
}
