import RespBridge
import Testing

@Suite struct RedisConfigurationTests {
    @Test(arguments: [
        ("redis://127.0.0.1:6380/2", RedisConfiguration.Endpoint.tcp(host: "127.0.0.1", port: 6380), nil as String?, nil as String?, 2),
        ("redis://localhost", .tcp(host: "localhost", port: 6379), nil, nil, 0),
        ("redis://:s3cret@db.internal:7000/0", .tcp(host: "db.internal", port: 7000), nil, "s3cret", 0),
        ("redis://alice:pw:with:colons@h:1/15", .tcp(host: "h", port: 1), "alice", "pw:with:colons", 15),
        ("redis://[::1]:6390/3", .tcp(host: "::1", port: 6390), nil, nil, 3),
        ("unix:///run/redis/redis.sock", .unix(path: "/run/redis/redis.sock"), nil, nil, 0),
        ("unix:///tmp/r.sock?db=4&password=x", .unix(path: "/tmp/r.sock"), nil, "x", 4),
        // Percent-encoded credentials, as redis-cli -u decodes them.
        ("redis://alice:p%40ss%3aw%2F@h:1/0", .tcp(host: "h", port: 1), "alice", "p@ss:w/", 0),
        ("unix:///tmp/r.sock?user=ingest&password=p%26x", .unix(path: "/tmp/r.sock"), "ingest", "p&x", 0),
    ])
    func parsesURLs(url: String, endpoint: RedisConfiguration.Endpoint, user: String?, password: String?, db: Int) throws {
        let configuration = try RedisConfiguration(url: url)
        #expect(configuration.endpoint == endpoint)
        #expect(configuration.username == user)
        #expect(configuration.password == password)
        #expect(configuration.database == db)
    }

    @Test(arguments: [
        "http://127.0.0.1:6379", "redis://", "redis://host:notaport", "redis://host:70000", "redis://host/x",
        "unix://relative.sock", "unix:///tmp/r.sock?db=x", "unix:///tmp/r.sock?color=blue", "redis://[::1:6379",
        "redis://:p%4@h", "redis://:p%zz@h", "redis://:%ff@h", "unix:///tmp/r.sock?user=ingest",
    ])
    func rejectsBadURLs(url: String) {
        #expect(throws: RespError.self) { try RedisConfiguration(url: url) }
        do {
            _ = try RedisConfiguration(url: url)
        } catch {
            #expect(error.code == .configuration)
            #expect(!error.description.contains("\n"))
        }
    }

    @Test(arguments: [
        ("redis://:s3cret@127.0.0.1:x", "redis://:***@127.0.0.1:x"),
        ("redis://alice:s3cret@h/zz", "redis://alice:***@h/zz"),
        ("unix:///tmp/r.sock?db=x&password=s3cret", "unix:///tmp/r.sock?db=x&password=***"),
        // A password with '&' not encoded: its tail is hidden too.
        ("unix:///tmp/r.sock?password=s3cret&cd=1", "unix:///tmp/r.sock?password=***"),
        // Schemes pixeld refuses, and no scheme at all.
        ("rediss://default:s3cret@host:6380", "rediss://default:***@host:6380"),
        ("Redis://:s3cret@h", "Redis://:***@h"),
        ("s3cret@host:6379", "***@host:6379"),
        ("redis://:s3/cret@h:x", "redis://:***@h:x"),
    ])
    func errorsHideThePassword(url: String, shown: String) {
        #expect(RedisConfiguration.redacted(url) == shown)
        #expect(throws: RespError.self) { try RedisConfiguration(url: url) }
        do {
            _ = try RedisConfiguration(url: url)
        } catch {
            #expect(!error.description.contains("s3cret"))
            #expect(error.description.contains(shown))
        }
    }

    @Test func descriptionHidesThePassword() throws {
        let configuration = try RedisConfiguration(url: "redis://:hunter2@127.0.0.1:6379/1")
        #expect(!configuration.description.contains("hunter2"))
        #expect(configuration.description == "redis://***@127.0.0.1:6379/1")
    }
}

@Suite struct BackoffTests {
    @Test func growsToTheCapWithJitterBelowTheNominalDelay() {
        var backoff = Backoff(initialMilliseconds: 50, maximumMilliseconds: 500, multiplier: 2, jitter: 0.2)
        var generator = SystemRandomNumberGenerator()
        let nominal = [50, 100, 200, 400, 500, 500, 500]
        for expected in nominal {
            let delay = backoff.nextDelayMilliseconds(using: &generator)
            #expect(delay <= expected)
            #expect(delay >= expected - expected / 5)
        }
        backoff.reset()
        #expect(backoff.nextDelayMilliseconds(using: &generator) <= 50)
    }
}

@Suite struct RespErrorTests {
    /// A server's refusal keeps its connection, except from a server that takes no writes now (the
    /// address may lead to another one after a failover); the writer counts retries by its prefix.
    @Test(arguments: [
        ("LOADING Redis is loading the dataset in memory", "LOADING", true),
        ("BUSY Redis is busy running a script", "BUSY", false),
        ("OOM command not allowed when used memory > 'maxmemory'.", "OOM", false),
        ("READONLY You can't write against a read only replica.", "READONLY", true),
        ("MASTERDOWN Link with MASTER is down", "MASTERDOWN", true),
        ("WRONGTYPE Operation against a key holding the wrong kind of value", "WRONGTYPE", false),
        ("NOPERM this user has no permissions", "NOPERM", false),
        ("ERR unknown command", "ERR", false),
    ])
    func classifiesServerErrors(text: String, prefix: String, reconnect: Bool) {
        let error = RespError(code: .server, operation: "LPUSH", message: text)
        #expect(error.serverErrorPrefix == Substring(prefix))
        #expect(error.callsForReconnect == reconnect)
        #expect(!error.connectionIsDead)
    }
}
