import PixelEvents
import Testing

@Suite("Lines logged by a real nginx")
struct NginxLineTests {
    @Test("escape=json line", arguments: NginxFixtures.hits)
    func jsonLine(hit: NginxFixtures.Hit) throws {
        let event = try PixelEventDecoder.decode(rawBytes(hit.json))
        #expect(event.timestampText == hit.timestampText)
        #expect(event.timestamp == Double(hit.timestampText))
        #expect(event.args == hit.args)
        #expect(event.fields == hit.fields)
        expectJSONMatches(event.jsonLine(), event)
    }

    @Test("$msec,$args line with default escaping", arguments: NginxFixtures.hits)
    func classicLine(hit: NginxFixtures.Hit) throws {
        let event = try PixelEventDecoder.decode(rawBytes(hit.classic))
        #expect(event.timestampText == hit.timestampText)
        #expect(event.args == hit.args)
        #expect(event.fields.isEmpty)
        expectJSONMatches(event.jsonLine(), event)
    }

    /// rsyslog relaying nginx's line as RFC 5424 keeps the space after `pixel:` in MSG: the line
    /// still decodes (it used to be dead-lettered: "does not start with a digit").
    @Test("$msec,$args line behind leading whitespace", arguments: NginxFixtures.hits)
    func classicLineAfterSpaces(hit: NginxFixtures.Hit) throws {
        let event = try PixelEventDecoder.decode(Array(" \t ".utf8) + rawBytes(hit.classic))
        #expect(event.timestampText == hit.timestampText)
        #expect(event.args == hit.args)
    }

    @Test("both shapes of the same hit give the same ts and args")
    func shapesAgree() throws {
        for hit in NginxFixtures.hits {
            let json = try PixelEventDecoder.decode(rawBytes(hit.json))
            let classic = try PixelEventDecoder.decode(rawBytes(hit.classic))
            #expect(json.timestampText == classic.timestampText)
            #expect(json.args == classic.args)
        }
    }

    @Test("exact output for an escape=json line with controls and invalid bytes")
    func exactOutputOfAwkwardLine() throws {
        let event = try PixelEventDecoder.decode(rawBytes(NginxFixtures.hits[3].json))
        #expect(
            event.jsonLine()
                == #"{"ts":1795351090.317,"args":{"q":"\"quo\\te\""},"rid":"92d9558c163b207e8e114043a71f8d4c","ip":"127.0.0.1","ua":"café �� raw","ref":"","dnt":"","gpc":""}"#
        )
        let controls = try PixelEventDecoder.decode(rawBytes(NginxFixtures.hits[8].json))
        #expect(controls.field("ua") == "✓ a\u{1B}[1m\u{08}\u{0C}")
        #expect(controls.jsonLine().contains(#""ua":"✓ a\u001b[1m\b\f""#))
        #expect(controls.jsonLine().hasPrefix(#"{"ts":1795351099.258,"args":{"\u0000":"1","k":"%ZZ%4"}"#))
    }
}
