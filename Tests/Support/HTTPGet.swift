import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `GET path` over HTTP/1.0 on 127.0.0.1:`port`, its lines ended with `lineEnding` (as curl does,
/// or bare `\n` as `printf … | nc` may); the body.
public func httpGet(port: Int, path: String, timeout: Int = 5, lineEnding: String = "\r\n") throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket failed: errno \(errno)") }
    defer { systemClose(fd) }
    var time = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &time, socklen_t(MemoryLayout<timeval>.size))
    guard connectToLoopback(fd, port: port) else { throw TestSupportError("connect(127.0.0.1:\(port)) failed: errno \(errno)") }
    let request = Array("GET \(path) HTTP/1.0\(lineEnding)Host: 127.0.0.1\(lineEnding)\(lineEnding)".utf8)
    guard request.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == request.count else {
        throw TestSupportError("write to 127.0.0.1:\(port) failed: errno \(errno)")
    }
    var response: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    for _ in 0..<10_000 {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count > 0 {
            response += chunk[0..<count]
        } else if count < 0 && errno == EINTR {
            continue
        } else if count < 0 {
            throw TestSupportError("read from 127.0.0.1:\(port) failed: errno \(errno)")
        } else {
            break
        }
    }
    let text = String(decoding: response, as: UTF8.self)
    guard text.hasPrefix("HTTP/1."), let separator = text.range(of: "\r\n\r\n") else {
        throw TestSupportError("not an HTTP response from 127.0.0.1:\(port)\(path): \(text.prefix(200))")
    }
    return String(text[separator.upperBound...])
}
