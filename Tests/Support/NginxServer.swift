public import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A private nginx serving `deploy/nginx-syslog.conf` (rendered for the test) on a loopback port,
/// run in the foreground (`daemon off; master_process on; worker_processes 1`) as a child of the
/// test process, with every path under a temporary prefix.
///
/// The rendering follows the marker contract documented at the top of `deploy/nginx-syslog.conf`
/// (the same one `scripts/render-nginx-conf.sh` implements): `# pixeld:listen`,
/// `# pixeld:syslog-udp`, `# pixeld:syslog-unix`. It may add one line, `access_log FILE pixel;`
/// beside the syslog one, so a test can compare what reached Redis with nginx's own log.
public final class NginxServer: @unchecked Sendable {
    // @unchecked Sendable: all stored properties are immutable after start; ChildProcess is
    // thread-safe.
    private let child: ChildProcess

    /// The temporary prefix holding nginx.conf, pixel.conf, error.log, nginx.pid, temp paths.
    public let prefix: TempDirectory
    /// The HTTP port on 127.0.0.1.
    public let httpPort: Int
    /// The rendered deploy file, as nginx reads it.
    public let renderedConfiguration: String
    /// The extra file log requested at start, if any.
    public let extraLogFile: String?
    /// Directories nginx reads from for as long as it runs (deleted with the server).
    private var keepAlive: [TempDirectory] = []

    /// The master process's PID.
    public var pid: Int32 { child.pid }
    /// `http://127.0.0.1:<httpPort>`.
    public var baseURL: String { "http://127.0.0.1:\(httpPort)" }

    /// `http://127.0.0.1:<httpPort>/pixel.gif?<query>` (the query is used as given).
    public func pixelURL(query: String) -> String {
        "\(baseURL)/pixel.gif?\(query)"
    }

    /// The contents of nginx's error log.
    public var errorLog: String {
        (try? String(contentsOf: prefix.appending("error.log"), encoding: .utf8)) ?? ""
    }

    /// The lines of ``extraLogFile`` once it holds at least `count` complete lines, or when `timeout`
    /// seconds have passed (then fewer: the caller's count check fails with the real number). nginx
    /// writes its file log in the request's log phase, which can come after the client has read the
    /// whole response, so a read right after the last request may miss the last lines.
    /// - Throws: ``TestSupportError`` when no extra log was requested or it cannot be read.
    public func extraLogLines(waitingFor count: Int, timeout: TimeInterval = 5) throws -> [[UInt8]] {
        guard let extraLogFile else { throw TestSupportError("nginx was started without an extra log file") }
        Poll.until(timeout: timeout, interval: 0.01) {
            guard let data = FileManager.default.contents(atPath: extraLogFile) else { return false }
            return data.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 } >= count
        }
        return try extraLogLines()
    }

    /// The lines of ``extraLogFile`` as raw bytes, without their `\n`.
    /// - Throws: ``TestSupportError`` when no extra log was requested or it cannot be read.
    public func extraLogLines() throws -> [[UInt8]] {
        guard let extraLogFile else { throw TestSupportError("nginx was started without an extra log file") }
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: extraLogFile))
        } catch {
            throw TestSupportError("cannot read \(extraLogFile): \(error)")
        }
        var lines = Array(data).split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).map(Array.init)
        if lines.last == [] { lines.removeLast() }
        return lines
    }

    private init(child: ChildProcess, prefix: TempDirectory, httpPort: Int, rendered: String, extraLogFile: String?) {
        self.child = child
        self.prefix = prefix
        self.httpPort = httpPort
        self.renderedConfiguration = rendered
        self.extraLogFile = extraLogFile
    }

    /// Renders `deployConf` and starts nginx with it; waits (at most 5 s) until the HTTP port
    /// accepts connections.
    /// - Parameters:
    ///   - deployConf: `deploy/nginx-syslog.conf` (``TestEnvironment/deployNginxConf``).
    ///   - httpPort: the port to listen on, on 127.0.0.1.
    ///   - syslogUDP: `"127.0.0.1:PORT"` to keep the UDP line pointing there, `nil` to comment it out.
    ///   - syslogUnix: a unix datagram socket path to enable the unix line, `nil` to keep it off.
    ///     nginx workers run as `nobody` under root: the path's directories must be searchable
    ///     (`TempDirectory(permissions: 0o755)`) and the socket writable by them.
    ///   - extraLogFile: a file to log the same format to, or `nil`.
    ///   - trustLoopbackProxy: uncomment the `# pixeld:real-ip` line: the client address is taken from
    ///     `X-Forwarded-For` on requests from 127.0.0.1.
    ///   - trustedCDNRange: uncomment the `# pixeld:real-ip-cdn` line with this range, or `nil`.
    /// - Throws: ``TestSupportError`` when nginx is missing, the file lacks a marker, `nginx -t`
    ///   fails, or the port does not answer in time (the error log is included).
    public static func start(
        renderedFrom deployConf: URL,
        httpPort: Int,
        syslogUDP: String?,
        syslogUnix: String?,
        extraLogFile: String?,
        trustLoopbackProxy: Bool = false,
        trustedCDNRange: String? = nil
    ) throws -> NginxServer {
        let source: String
        do {
            source = try String(contentsOf: deployConf, encoding: .utf8)
        } catch {
            throw TestSupportError("cannot read \(deployConf.path): \(error)")
        }
        let rendered = try render(
            source,
            listen: "127.0.0.1:\(httpPort)",
            syslogUDP: syslogUDP,
            syslogUnix: syslogUnix,
            extraLogFile: extraLogFile,
            trustLoopbackProxy: trustLoopbackProxy,
            trustedCDNRange: trustedCDNRange
        )
        return try start(configuration: rendered, httpPort: httpPort, extraLogFile: extraLogFile)
    }

    /// Starts nginx with `rendered` in its `http {}` context (which must listen on 127.0.0.1:`httpPort`);
    /// waits (at most 5 s) until the port accepts connections.
    /// - Throws: ``TestSupportError`` when nginx is missing, `nginx -t` fails, or the port does not
    ///   answer in time (the error log is included).
    public static func start(configuration rendered: String, httpPort: Int, extraLogFile: String? = nil) throws -> NginxServer {
        let nginx = try TestEnvironment.requireTool("nginx")
        let prefix = try TempDirectory(prefix: "pixeld-nginx", permissions: 0o755)
        let included = prefix.appending("pixel.conf")
        let main = prefix.appending("nginx.conf")
        let p = prefix.path
        let wrapper = """
            # Written by PixeldTestSupport.NginxServer for one test.
            daemon off;
            master_process on;
            worker_processes 1;
            pid \(p)/nginx.pid;
            error_log \(p)/error.log notice;
            events { worker_connections 1024; }
            http {
                client_body_temp_path \(p)/client_body_temp;
                proxy_temp_path \(p)/proxy_temp;
                fastcgi_temp_path \(p)/fastcgi_temp;
                uwsgi_temp_path \(p)/uwsgi_temp;
                scgi_temp_path \(p)/scgi_temp;
                access_log off;
                include \(included.path);
            }

            """
        do {
            try rendered.write(to: included, atomically: true, encoding: .utf8)
            try wrapper.write(to: main, atomically: true, encoding: .utf8)
        } catch {
            throw TestSupportError("cannot write nginx configuration under \(p): \(error)")
        }
        let arguments = ["-p", p + "/", "-e", p + "/error.log", "-c", main.path]
        let check = try ChildProcess.run(nginx.path, ["-t"] + arguments, timeout: 10, checkStatus: false)
        if check.status != 0 {
            throw TestSupportError("nginx -t failed for \(main.path):\n\(check.stderr)\n--- pixel.conf ---\n\(rendered)")
        }
        let child = try ChildProcess(executable: nginx, arguments: arguments)
        let server = NginxServer(
            child: child,
            prefix: prefix,
            httpPort: httpPort,
            rendered: rendered,
            extraLogFile: extraLogFile
        )
        let up = Poll.until(timeout: 5, interval: 0.02) { !child.isRunning || tcpPortAnswers(httpPort) }
        if up && child.isRunning { return server }
        server.stop()
        throw TestSupportError("nginx did not answer on 127.0.0.1:\(httpPort) within 5 s\n\(server.errorLog)\(child.tail)")
    }

    /// nginx from the deploy file with the recommended `pixel_json` format on the UDP syslog line
    /// (as the deploy file's comment tells users to do) and `files` served beside the pixel, e.g.
    /// `["pixel.js": ("application/javascript", tracker), "test.html": ("text/html", page)]`.
    /// `trustLoopbackProxy` and `trustedCDNRange` as for ``start(renderedFrom:httpPort:syslogUDP:syslogUnix:extraLogFile:trustLoopbackProxy:trustedCDNRange:)``.
    /// - Throws: ``TestSupportError`` as ``start(renderedFrom:httpPort:syslogUDP:syslogUnix:extraLogFile:trustLoopbackProxy:trustedCDNRange:)``.
    public static func startAnalytics(
        httpPort: Int, syslogUDP: String, files: [String: (type: String, contents: String)] = [:], trustLoopbackProxy: Bool = false,
        trustedCDNRange: String? = nil
    ) throws -> NginxServer {
        let site = try TempDirectory(prefix: "pixeld-site", permissions: 0o755)
        var locations = ""
        for (name, file) in files.sorted(by: { $0.key < $1.key }) {
            do {
                try file.contents.write(to: site.appending(name), atomically: true, encoding: .utf8)
            } catch {
                throw TestSupportError("cannot write \(name) under \(site.path): \(error)")
            }
            chmod(site.appending(name).path, 0o644)
            locations += "    location = /\(name) { root \(site.path); default_type \(file.type); }\n"
        }
        var conf: String
        do {
            conf = try String(contentsOf: TestEnvironment.deployNginxConf, encoding: .utf8)
        } catch {
            throw TestSupportError("cannot read \(TestEnvironment.deployNginxConf.path): \(error)")
        }
        guard conf.contains("log_format pixel_json escape=json"), conf.contains(" pixel;  # pixeld:syslog-udp") else {
            throw TestSupportError("deploy/nginx-syslog.conf: no pixel_json format or no UDP syslog line to switch")
        }
        conf = conf.replacingOccurrences(of: " pixel;  # pixeld:syslog-udp", with: " pixel_json;  # pixeld:syslog-udp")
        conf = conf.replacingOccurrences(of: "    location / {", with: locations + "    location / {")
        let directory = try TempDirectory(prefix: "pixeld-conf", permissions: 0o755)
        do {
            try conf.write(to: directory.appending("nginx-syslog.conf"), atomically: true, encoding: .utf8)
        } catch {
            throw TestSupportError("cannot write the nginx configuration: \(error)")
        }
        let server = try start(
            renderedFrom: directory.appending("nginx-syslog.conf"), httpPort: httpPort, syslogUDP: syslogUDP,
            syslogUnix: nil, extraLogFile: nil, trustLoopbackProxy: trustLoopbackProxy, trustedCDNRange: trustedCDNRange
        )
        server.keepAlive = [site, directory]
        return server
    }

    /// Applies the marker contract of `deploy/nginx-syslog.conf` to `text`.
    /// - Parameters:
    ///   - text: the deploy file's contents.
    ///   - listen: the address for the `# pixeld:listen` line (`127.0.0.1:18080`).
    ///   - syslogUDP: UDP target for the `# pixeld:syslog-udp` line, or `nil` to comment it out.
    ///   - syslogUnix: socket path for the `# pixeld:syslog-unix` line (uncommented), or `nil`.
    ///   - extraLogFile: when set, `access_log FILE pixel;` is added after the syslog lines.
    ///   - trustLoopbackProxy: uncomment the `# pixeld:real-ip` line.
    ///   - trustedCDNRange: uncomment the `# pixeld:real-ip-cdn` line with this range in it, or `nil`.
    /// - Throws: ``TestSupportError`` when a marker is missing or appears more than once.
    public static func render(
        _ text: String,
        listen: String,
        syslogUDP: String?,
        syslogUnix: String?,
        extraLogFile: String?,
        trustLoopbackProxy: Bool = false,
        trustedCDNRange: String? = nil
    ) throws -> String {
        var lines = text.components(separatedBy: "\n")
        func index(of marker: String) throws -> Int {
            let hits = lines.indices.filter { lines[$0].hasSuffix("# \(marker)") }
            guard hits.count == 1 else {
                throw TestSupportError("deploy/nginx-syslog.conf: expected one line ending in \"# \(marker)\", found \(hits.count)")
            }
            return hits[0]
        }
        let listenIndex = try index(of: "pixeld:listen")
        let udpIndex = try index(of: "pixeld:syslog-udp")
        let unixIndex = try index(of: "pixeld:syslog-unix")
        let realIPIndex = try index(of: "pixeld:real-ip")
        let realIPCDNIndex = try index(of: "pixeld:real-ip-cdn")
        func uncommented(_ line: String) -> String {
            let indent = line.prefix { $0 == " " }
            var body = line.dropFirst(indent.count)
            while body.hasPrefix("#") { body = body.dropFirst() }
            return String(indent + body.drop { $0 == " " })
        }
        if trustLoopbackProxy { lines[realIPIndex] = uncommented(lines[realIPIndex]) }
        if let trustedCDNRange {
            lines[realIPCDNIndex] = try replacing(in: uncommented(lines[realIPCDNIndex]), after: "set_real_ip_from ", upTo: ";", with: trustedCDNRange)
        }

        lines[listenIndex] = try replacing(in: lines[listenIndex], after: "listen ", upTo: ";", with: listen)
        let udpLine = lines[udpIndex]
        if let syslogUDP {
            lines[udpIndex] = try replacing(in: udpLine, after: "server=", upTo: ",", with: syslogUDP)
        } else {
            let indent = udpLine.prefix { $0 == " " }
            lines[udpIndex] = String(indent) + "# " + String(udpLine.dropFirst(indent.count))
        }
        if let syslogUnix {
            lines[unixIndex] = try replacing(in: uncommented(lines[unixIndex]), after: "server=unix:", upTo: ",", with: syslogUnix)
        }
        if let extraLogFile {
            let indent = udpLine.prefix { $0 == " " }
            lines.insert("\(indent)access_log \(extraLogFile) pixel;  # added by the test", at: max(udpIndex, unixIndex) + 1)
        }
        return lines.joined(separator: "\n")
    }

    private static func replacing(in line: String, after start: String, upTo end: Character, with value: String) throws -> String {
        guard let startRange = line.range(of: start),
            let endIndex = line[startRange.upperBound...].firstIndex(of: end)
        else {
            throw TestSupportError("deploy/nginx-syslog.conf: cannot find \"\(start)…\(end)\" in: \(line)")
        }
        return line.replacingCharacters(in: startRange.upperBound..<endIndex, with: value)
    }

    /// SIGTERM to the master (it stops its worker), SIGKILL to master and worker after 5 s.
    public func stop() {
        guard child.isRunning else { return }
        let workers = Self.children(of: child.pid)
        child.terminate()
        if child.exitStatus(waitingUpTo: 5) != nil { return }
        child.kill()
        _ = child.exitStatus(waitingUpTo: 2)
        for worker in workers { systemKill(worker, SIGKILL) }
    }

    /// PIDs whose parent is `pid` (from /proc), so a SIGKILLed master leaves no worker behind.
    private static func children(of pid: Int32) -> [Int32] {
        let path = "/proc/\(pid)/task/\(pid)/children"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        return text.split(separator: " ").compactMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    deinit {
        stop()
    }
}
