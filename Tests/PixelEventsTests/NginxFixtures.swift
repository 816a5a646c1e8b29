// swift-format-ignore-file: LineLength
// (fixtures are exact nginx log lines and are kept on one line each)

import PixelEvents
import Testing

/// Exact lines logged by nginx 1.22.1 (Debian 12) for real requests made with curl and raw
/// sockets, from
///
///     log_format j escape=json '{"ts":$msec,"rid":"$request_id","args":"$args","ip":"$remote_addr",'
///                              '"ua":"$http_user_agent","ref":"$http_referer","dnt":"$http_dnt","gpc":"$http_sec_gpc"}';
///     log_format c '$msec,$args';
///
/// Raw bytes are written as `\u{80}`…`\u{FF}` (see ``rawBytes(_:)``). Observed escaping: with
/// `escape=json` nginx writes `\"`, `\\`, `\t`, `\b`, `\f`, `\n`, `\r`, `\u00XX` (upper-case hex)
/// for other controls, and passes DEL and non-ASCII bytes raw; with the default escaping it writes
/// `\xHH` for `"`, `\`, controls and bytes ≥ 0x7F, and `-` for an empty `$args`.
enum NginxFixtures {
    struct Hit: Sendable, CustomTestStringConvertible {
        var name: String
        var json: String
        var classic: String
        var args: [QueryArg]
        var fields: [PixelEvent.Field]
        var timestampText: String

        var testDescription: String { name }
    }

    static let hits: [Hit] = [
        Hit(
            name: "plain",
            json:
                #"{"ts":1795351090.287,"rid":"e05ce8a6719199b13e14164e663f8c20","args":"foo=bar&baz=1","ip":"127.0.0.1","ua":"curl/7.88.1","ref":"","dnt":"","gpc":""}"#,
            classic: "1795351090.287,foo=bar&baz=1",
            args: qargs(["foo": "bar", "baz": "1"]),
            fields: fields([
                "rid": "e05ce8a6719199b13e14164e663f8c20", "ip": "127.0.0.1", "ua": "curl/7.88.1", "ref": "",
                "dnt": "", "gpc": "",
            ]),
            timestampText: "1795351090.287"
        ),
        Hit(
            name: "quotes, backslash, referer, privacy headers",
            json:
                #"{"ts":1795351090.297,"rid":"940f63d2e4d90adf2868db07d5080d2a","args":"e=pageview&u=https%3A%2F%2Fex.com%2F&w=1280","ip":"127.0.0.1","ua":"Mozilla/5.0 \"quoted\" back\\slash","ref":"https://google.com/","dnt":"1","gpc":"1"}"#,
            classic: "1795351090.297,e=pageview&u=https%3A%2F%2Fex.com%2F&w=1280",
            args: qargs(["e": "pageview", "u": "https://ex.com/", "w": "1280"]),
            fields: fields([
                "rid": "940f63d2e4d90adf2868db07d5080d2a", "ip": "127.0.0.1",
                "ua": #"Mozilla/5.0 "quoted" back\slash"#, "ref": "https://google.com/", "dnt": "1", "gpc": "1",
            ]),
            timestampText: "1795351090.297"
        ),
        Hit(
            name: "control characters, plus, bad percent, repeated and bare keys",
            json:
                #"{"ts":1795351090.307,"rid":"352701036bf9db937ae36d9fe1ca5fec","args":"e=click&p=%E2%9C%93+ok&x=%zz&k=1&k=2&flag","ip":"127.0.0.1","ua":"tab\there\u0001ctl\u001F","ref":"","dnt":"","gpc":""}"#,
            classic: "1795351090.307,e=click&p=%E2%9C%93+ok&x=%zz&k=1&k=2&flag",
            args: qargs(["e": "click", "p": "✓ ok", "x": "%zz", "k": "1", "k": "2", "flag": ""]),
            fields: fields([
                "rid": "352701036bf9db937ae36d9fe1ca5fec", "ip": "127.0.0.1", "ua": "tab\there\u{01}ctl\u{1F}",
                "ref": "", "dnt": "", "gpc": "",
            ]),
            timestampText: "1795351090.307"
        ),
        Hit(
            name: "raw quote and backslash in args, raw UTF-8 and invalid bytes in user agent",
            json:
                "{\"ts\":1795351090.317,\"rid\":\"92d9558c163b207e8e114043a71f8d4c\",\"args\":\"q=\\\"quo\\\\te\\\"\",\"ip\":\"127.0.0.1\",\"ua\":\"caf\u{C3}\u{A9} \u{FF}\u{FE} raw\",\"ref\":\"\",\"dnt\":\"\",\"gpc\":\"\"}",
            classic: #"1795351090.317,q=\x22quo\x5Cte\x22"#,
            args: qargs(["q": #""quo\te""#]),
            fields: fields([
                "rid": "92d9558c163b207e8e114043a71f8d4c", "ip": "127.0.0.1", "ua": "café \u{FFFD}\u{FFFD} raw",
                "ref": "", "dnt": "", "gpc": "",
            ]),
            timestampText: "1795351090.317"
        ),
        Hit(
            name: "no query string",
            json:
                #"{"ts":1795351090.327,"rid":"b4b22741cd17f9936850bf49a62bac69","args":"","ip":"127.0.0.1","ua":"curl/7.88.1","ref":"","dnt":"","gpc":""}"#,
            classic: "1795351090.327,-",
            args: [],
            fields: fields([
                "rid": "b4b22741cd17f9936850bf49a62bac69", "ip": "127.0.0.1", "ua": "curl/7.88.1", "ref": "",
                "dnt": "", "gpc": "",
            ]),
            timestampText: "1795351090.327"
        ),
        Hit(
            name: "percent-encoded quote, backslash, newline and UTF-8",
            json:
                #"{"ts":1795351090.336,"rid":"afd6b28f31df503a8fae4d3e1d4112df","args":"a=%22%5C%0A&b=%C3%A9","ip":"127.0.0.1","ua":"","ref":"","dnt":"","gpc":""}"#,
            classic: "1795351090.336,a=%22%5C%0A&b=%C3%A9",
            args: qargs(["a": "\"\\\n", "b": "é"]),
            fields: fields([
                "rid": "afd6b28f31df503a8fae4d3e1d4112df", "ip": "127.0.0.1", "ua": "", "ref": "", "dnt": "",
                "gpc": "",
            ]),
            timestampText: "1795351090.336"
        ),
        Hit(
            name: "four-byte UTF-8, DEL passed raw",
            json:
                "{\"ts\":1795351090.346,\"rid\":\"8fd7266e55845997e0a43b8fed700bfd\",\"args\":\"u=%F0%9F%98%80\",\"ip\":\"127.0.0.1\",\"ua\":\"\u{7F} del\",\"ref\":\"\",\"dnt\":\"\",\"gpc\":\"\"}",
            classic: "1795351090.346,u=%F0%9F%98%80",
            args: qargs(["u": "😀"]),
            fields: fields([
                "rid": "8fd7266e55845997e0a43b8fed700bfd", "ip": "127.0.0.1", "ua": "\u{7F} del", "ref": "",
                "dnt": "", "gpc": "",
            ]),
            timestampText: "1795351090.346"
        ),
        Hit(
            name: "raw UTF-8 and an invalid byte in the query string",
            json:
                "{\"ts\":1795351096.529,\"rid\":\"e40ee840540123142143f642afb47cf2\",\"args\":\"t=caf\u{C3}\u{A9}&bad=\u{FF}\",\"ip\":\"127.0.0.1\",\"ua\":\"curl/7.88.1\",\"ref\":\"\",\"dnt\":\"\",\"gpc\":\"\"}",
            classic: #"1795351096.529,t=caf\xC3\xA9&bad=\xFF"#,
            args: qargs(["t": "café", "bad": "\u{FFFD}"]),
            fields: fields([
                "rid": "e40ee840540123142143f642afb47cf2", "ip": "127.0.0.1", "ua": "curl/7.88.1", "ref": "",
                "dnt": "", "gpc": "",
            ]),
            timestampText: "1795351096.529"
        ),
        Hit(
            name: "NUL name, truncated percent escapes, ESC and \\b \\f in user agent",
            json:
                "{\"ts\":1795351099.258,\"rid\":\"82ba5f78fba11ec7a96cb69718e893ba\",\"args\":\"%00=1&k=%ZZ%4\",\"ip\":\"127.0.0.1\",\"ua\":\"\u{E2}\u{9C}\u{93} a\\u001B[1m\\b\\f\",\"ref\":\"\",\"dnt\":\"\",\"gpc\":\"\"}",
            classic: "1795351099.258,%00=1&k=%ZZ%4",
            args: qargs(["\u{0}": "1", "k": "%ZZ%4"]),
            fields: fields([
                "rid": "82ba5f78fba11ec7a96cb69718e893ba", "ip": "127.0.0.1", "ua": "✓ a\u{1B}[1m\u{08}\u{0C}",
                "ref": "", "dnt": "", "gpc": "",
            ]),
            timestampText: "1795351099.258"
        ),
    ]
}
