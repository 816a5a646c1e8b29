extension Report {
    /// The breakdowns in the JSON object and the terminal report, with their JSON names and the
    /// name of their count.
    static let sections: [(breakdown: Breakdown, json: String, title: String, count: String)] = [
        (.pages, "pages", "Pages", "pageviews"),
        (.entryPages, "entry_pages", "Entry pages", "visits"),
        (.sources, "sources", "Sources", "pageviews"),
        (.utmSources, "utm_sources", "UTM sources", "pageviews"),
        (.utmMediums, "utm_mediums", "UTM mediums", "pageviews"),
        (.utmCampaigns, "utm_campaigns", "UTM campaigns", "pageviews"),
        (.browsers, "browsers", "Browsers", "pageviews"),
        (.os, "os", "Operating systems", "pageviews"),
        (.devices, "devices", "Devices", "pageviews"),
        (.countries, "countries", "Countries", "pageviews"),
        (.hours, "hours", "Hours (UTC)", "pageviews"),
        (.events, "events", "Custom events", "events"),
    ]

    /// The report as one JSON object (schema version 1):
    ///
    /// `{"v":1,"site","from","to","pageviews","visitors","visits","bounces","bounce_rate",
    /// "visit_duration_s","total_duration_s","custom_events","drops":{reason:n},` then one array per
    /// breakdown: `pages`, `sources` (`{"name","pageviews","visits"}`), `utm_sources`,
    /// `utm_mediums`, `utm_campaigns`, `browsers`, `os`, `devices`, `countries`, `hours`
    /// (`{"name","pageviews"}`), `entry_pages` (`{"name","visits"}`), `events` (`{"name","events"}`)`}`.
    /// `visitors` over several days is the HyperLogLog union of the days.
    /// - Parameter limit: Entries per breakdown at most.
    public func json(limit: Int = 100) -> String {
        var out = JSONText(capacity: 4096)
        out.raw("{\"v\":1")
        out.member("site", site)
        out.member("from", from.description)
        out.member("to", to.description)
        out.rawMember("pageviews", String(pageviews))
        out.rawMember("visitors", String(visitors))
        out.rawMember("visits", String(visits))
        out.rawMember("bounces", String(bounces))
        out.rawMember("bounce_rate", Self.decimal(bounceRate, places: 4))
        out.rawMember("visit_duration_s", Self.decimal(visitDurationSeconds, places: 1))
        out.rawMember("total_duration_s", Self.decimal(Double(durationMilliseconds) / 1000, places: 3))
        // Not "events": that name is the custom-events breakdown array below.
        out.rawMember("custom_events", String(events))
        out.raw(",\"drops\":{")
        for (index, reason) in drops.keys.sorted().enumerated() {
            if index > 0 { out.raw(",") }
            out.string(reason)
            out.raw(":" + String(drops[reason]!))
        }
        out.raw("}")
        let sourceVisits = breakdowns[.sourceVisits] ?? [:]
        for section in Self.sections {
            out.raw(",\"" + section.json + "\":[")
            var entries = top(section.breakdown, limit: limit)
            if section.breakdown == .sources {
                // Sources with visits but no pageview (a visit of custom events only) still show.
                let names = Set(entries.map(\.name))
                entries += sourceVisits.keys.filter { !names.contains($0) }.sorted().map { ($0, 0) }
                entries = Array(entries.prefix(limit))
            }
            for (index, entry) in entries.enumerated() {
                if index > 0 { out.raw(",") }
                out.raw("{")
                out.member("name", entry.name, first: true)
                out.rawMember(section.count, String(entry.count))
                if section.breakdown == .sources { out.rawMember("visits", String(sourceVisits[entry.name] ?? 0)) }
                out.raw("}")
            }
            out.raw("]")
        }
        out.raw("}")
        return out.text
    }

    /// A readable terminal report: totals, then aligned tables of the top `limit` per breakdown.
    public func text(limit: Int = 10) -> String {
        var lines: [String] = []
        let range = from == to ? from.description : "\(from) … \(to)"
        lines.append("\(site) — \(range) (UTC)")
        lines.append("")
        let totals: [(String, String)] = [
            ("Pageviews", String(pageviews)),
            ("Unique visitors", String(visitors) + (from == to ? "" : " (union of the days' visitors; ids are daily, so one who came on two days counts twice)")),
            ("Visits", String(visits)),
            // Over no visits, no number (not 0 %, not 0 s).
            ("Bounce rate", visits == 0 ? "–" : Self.decimal(bounceRate * 100, places: 1) + " %"),
            ("Visit duration", visits == 0 ? "–" : Self.duration(visitDurationSeconds)),
            ("Custom events", String(events)),
        ]
        let width = totals.map(\.0.count).max() ?? 0
        for (name, value) in totals { lines.append("  " + Self.pad(name, width) + "  " + value) }
        if !drops.isEmpty {
            let text = Self.dropsText(drops)
            lines.append("  " + Self.pad("Dropped", width) + "  " + text)
        }
        let sourceVisits = breakdowns[.sourceVisits] ?? [:]
        for section in Self.sections {
            let entries = top(section.breakdown, limit: limit)
            if entries.isEmpty { continue }
            lines.append("")
            var header = [section.title, section.count.prefix(1).uppercased() + section.count.dropFirst()]
            if section.breakdown == .sources { header.append("Visits") }
            var rows = entries.map { entry -> [String] in
                var row = [Self.printable(entry.name), String(entry.count)]
                if section.breakdown == .sources { row.append(String(sourceVisits[entry.name] ?? 0)) }
                return row
            }
            rows.insert(header, at: 0)
            let nameWidth = min(60, rows.map { $0[0].count }.max() ?? 0)
            let numberWidths = (1..<header.count).map { column in rows.map { $0[column].count }.max() ?? 0 }
            for row in rows {
                var line = "  " + Self.pad(Self.truncate(row[0], nameWidth), nameWidth)
                for column in 1..<row.count {
                    line += "  " + String(repeating: " ", count: numberWidths[column - 1] - row[column].count) + row[column]
                }
                lines.append(line)
            }
            let hidden = (breakdowns[section.breakdown]?.count ?? 0) - entries.count
            if hidden > 0 { lines.append("  … and \(hidden) more (--limit, or --json)") }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Drop counts as one line, by reason name: `bot_list 3, dnt 1`.
    public static func dropsText(_ drops: [String: Int]) -> String {
        drops.keys.sorted().map { "\($0) \(drops[$0]!)" }.joined(separator: ", ")
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
    }

    static func truncate(_ text: String, _ width: Int) -> String {
        text.count <= width ? text : String(text.prefix(width - 1)) + "…"
    }

    /// Replaces anything a terminal could interpret (control characters, escapes) — values come from
    /// visitors' browsers.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) ? "?" : Character($0) })
    }

    static func decimal(_ value: Double, places: Int) -> String {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        let scaled = Int((value * scale).rounded())
        let whole = scaled / Int(scale)
        var fraction = String(abs(scaled % Int(scale)))
        while fraction.count < places { fraction = "0" + fraction }
        return places == 0 ? String(whole) : (scaled < 0 && whole == 0 ? "-" : "") + String(whole) + "." + fraction
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 60 ? "\(total / 60) min \(total % 60) s" : "\(total) s"
    }
}
