import PixelAnalytics

/// The server-rendered HTML: every piece of data goes through ``Escape/html(_:)``; no inline script,
/// style or event handler (the CSP forbids them), so the pages work without JavaScript.
enum Pages {
    /// The breakdown tables of the site page: breakdown, title, count column.
    static let tables: [(breakdown: Breakdown, title: String, count: String)] = [
        (.pages, "Pages", "Pageviews"),
        (.entryPages, "Entry pages", "Visits"),
        (.sources, "Sources", "Pageviews"),
        (.utmSources, "UTM sources", "Pageviews"),
        (.utmMediums, "UTM mediums", "Pageviews"),
        (.utmCampaigns, "UTM campaigns", "Pageviews"),
        (.countries, "Countries", "Pageviews"),
        (.browsers, "Browsers", "Pageviews"),
        (.os, "Operating systems", "Pageviews"),
        (.devices, "Devices", "Pageviews"),
        (.events, "Custom events", "Events"),
    ]

    static func layout(title: String, site: String? = nil, body: String) -> String {
        var html = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        html += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        html += "<title>" + Escape.html(title) + " · pixeld</title>"
        html += "<link rel=\"stylesheet\" href=\"/assets/dashboard.css\">"
        html += "<script src=\"/assets/dashboard.js\" defer></script></head>"
        html += "<body" + (site.map { " data-site=\"" + Escape.html($0) + "\"" } ?? "") + ">"
        html += "<header><a class=\"brand\" href=\"/\">pixeld</a></header><main>" + body + "</main>"
        html += "<footer>Privacy-respecting analytics: no cookies for visitors, no personal data stored.</footer>"
        return html + "</body></html>"
    }

    struct SiteRow {
        var site: String
        /// `nil`: unknown (a damaged rollup key), shown as "–".
        var visitors: Int?
        /// `nil`: unknown.
        var pageviews: Int?
        /// `nil`: a day whose pageviews are unknown (no point).
        var trend: [Int?]
    }

    static func siteList(_ rows: [SiteRow], today: Day, loggedIn: Bool, tokenRequired: Bool) -> String {
        var body = "<h1>Sites</h1><p class=\"muted\">Today, \(today) (UTC). Trend: pageviews over 30 days.</p>"
        if rows.isEmpty { body += "<p>No sites yet: run <code>pixeld consume pixel --site example.com</code>.</p>" }
        body += "<table class=\"sites\"><thead><tr><th>Site</th><th>Visitors</th><th>Pageviews</th><th>Trend</th></tr></thead><tbody>"
        for row in rows {
            body += "<tr><td><a href=\"/site?site=" + Escape.html(Escape.query(row.site)) + "\">" + Escape.html(row.site)
            body += "</a></td><td class=\"n\">" + number(row.visitors) + "</td><td class=\"n\">" + number(row.pageviews) + "</td><td>"
            body += SVGChart.sparkline(values: row.trend) + "</td></tr>"
        }
        body += "</tbody></table>"
        if tokenRequired && !loggedIn { body += "<p><a href=\"/login\">Log in</a> to see private sites.</p>" }
        if tokenRequired && loggedIn { body += "<form method=\"post\" action=\"/logout\"><button>Log out</button></form>" }
        return layout(title: "Sites", body: body)
    }

    /// The site page.
    /// - Parameters:
    ///   - previous: The report of ``RangeInput/previous``; `nil` when that period reaches past the
    ///     retention (``RangeInput/previousIsKept``): no change is shown.
    ///   - series: The chart's points, the whole range (its x axis).
    ///   - shown: How many of them have begun (the others, hours still to come, are not drawn).
    ///   - filterable: Whether table rows link to the page filtered by them (the dashboard has the
    ///     archive and the range is one it filters); otherwise they are plain text, and so is the
    ///     rollups' `(other)` row, which is no value a filter could match.
    static func sitePage(
        range: RangeInput, today: Day, report: Report, previous: Report?, series: [SeriesPoint], shown: Int = .max,
        realtime: Int, limit: Int, filterable: Bool = false
    ) -> String {
        let site = range.site
        let siteQuery = "site=" + Escape.query(site)
        let filterQuery = range.filter.map { "&filter=" + Escape.query($0.description) } ?? ""
        var body = "<h1>" + Escape.html(site) + "</h1>"
        body += "<nav class=\"periods\">"
        for (period, label) in [("today", "Today"), ("7d", "7 days"), ("30d", "30 days")] {
            let current = range.period == period ? " aria-current=\"page\"" : ""
            body += "<a href=\"" + Escape.html("/site?" + siteQuery + "&period=\(period)" + filterQuery) + "\"\(current)>\(label)</a>"
        }
        body += "<form class=\"custom\" method=\"get\" action=\"/site\"><input type=\"hidden\" name=\"site\" value=\""
        body += Escape.html(site) + "\">"
        if let filter = range.filter {
            body += "<input type=\"hidden\" name=\"filter\" value=\"" + Escape.html(filter.description) + "\">"
        }
        body += "<label>From <input type=\"date\" name=\"from\" value=\"\(range.from)\"></label>"
        body += "<label>To <input type=\"date\" name=\"to\" value=\"\(range.to)\"></label><button>Show</button></form></nav>"
        let span = range.from == range.to ? range.from.description : "\(range.from) – \(range.to)"
        let before = range.previous
        if previous == nil, let oldest = range.oldestKept {
            body += "<p class=\"muted\" id=\"range\">\(span) (UTC); not compared: the previous period, \(before.from) – "
            body += "\(before.to), starts before the oldest day kept, \(oldest) (--retention-days)</p>"
        } else {
            // A range that ends today holds part of a day, and its previous one only whole days.
            let partial = range.to >= today ? "; today so far, against whole days" : ""
            body += "<p class=\"muted\" id=\"range\">\(span) (UTC), compared with \(before.from) – \(before.to)\(partial)</p>"
        }
        if let filter = range.filter {
            let title = tables.first { $0.breakdown == filter.dimension }?.title ?? filter.dimension.rawValue
            body += "<p class=\"filter\" id=\"filter\">Filtered by " + Escape.html(title) + " = <strong>" + Escape.html(filter.value)
            body += "</strong> · <a href=\"" + Escape.html("/site?" + siteQuery + "&" + range.periodQuery) + "\">clear filter</a>"
            body += "<br><span class=\"muted\">Computed from the archive; unique visitors are exact, "
            body += (range.from == range.to ? "distinct visitors of the day" : "the sum of each day\u{2019}s distinct visitors") + ".</span></p>"
        }
        body += "<p class=\"realtime\"><span id=\"realtime\">\(realtime)</span> visitors in the last 5 minutes</p>"
        body += "<section class=\"headline\">"
        body += card("visitors", "Unique visitors", String(report.visitors), report.visitors, previous?.visitors)
        body += card("visits", "Visits", String(report.visits), report.visits, previous?.visits)
        body += card("pageviews", "Pageviews", String(report.pageviews), report.pageviews, previous?.pageviews)
        // Over no visits a bounce rate or a visit duration is no number at all (not 0 %, not 0 s).
        let visited = report.visits > 0
        body += card(
            "bounce", "Bounce rate", visited ? percent(report.bounceRate) : "–", Int((report.bounceRate * 1000).rounded()),
            previous.map { Int(($0.bounceRate * 1000).rounded()) }, lowerIsBetter: true, inPoints: (previous?.visits ?? 0) > 0,
            comparable: visited
        )
        body += card(
            "duration", "Visit duration", visited ? duration(report.visitDurationSeconds) : "–", Int(report.visitDurationSeconds),
            previous.map { Int($0.visitDurationSeconds) }, comparable: visited
        )
        body += "</section>"
        let hourly = range.from == range.to
        body += "<section class=\"chart\"><h2>Pageviews per " + (hourly ? "hour" : "day") + "</h2>"
        body += SVGChart.timeSeries(
            values: series.prefix(shown).map(\.pageviews), labels: series.map(\.label),
            title: "Pageviews per " + (hourly ? "hour (UTC)" : "day")
        )
        body += "</section><section class=\"tables\">"
        let base = "/api/breakdown?" + siteQuery + "&from=\(range.from)&to=\(range.to)" + filterQuery
        let pageBase = "/site?" + siteQuery + "&" + range.periodQuery + "&filter="
        for table in tables {
            let rows = report.top(table.breakdown, limit: limit)
            let total = max(1, rows.map(\.count).max() ?? 0)
            body += "<div class=\"table\" id=\"table-\(table.breakdown.rawValue)\"><h2>\(table.title)</h2>"
            body += "<table><thead><tr><th>Name</th><th class=\"n\">\(table.count)</th></tr></thead><tbody>"
            if rows.isEmpty { body += "<tr><td colspan=\"2\" class=\"muted\">No data</td></tr>" }
            for row in rows {
                let width = max(1, row.count * 100 / total)
                body += "<tr><td><span class=\"bar w\(width / 5 * 5)\"></span><span class=\"name\">"
                if filterable, row.name != RollupKeys.otherField,
                    let filter = try? ReportFilter(dimension: table.breakdown, value: row.name)
                {
                    // Every value is visitor text: percent-encoded into the URL, then HTML-escaped.
                    body += "<a href=\"" + Escape.html(pageBase + Escape.query(filter.description)) + "\">" + Escape.html(row.name) + "</a>"
                } else {
                    body += Escape.html(row.name)
                }
                body += "</span></td><td class=\"n\">\(row.count)</td></tr>"
            }
            body += "</tbody></table><a class=\"csv\" href=\"" + Escape.html(base + "&dimension=\(table.breakdown.rawValue)&format=csv")
            body += "\">CSV</a></div>"
        }
        body += "</section>"
        if !report.drops.isEmpty {
            // What the numbers leave out (bots, DNT, hits too old…): the reasons of DESIGN's drop list.
            body += "<p class=\"muted\" id=\"drops\">Hits not counted: " + Escape.html(Report.dropsText(report.drops)) + "</p>"
        }
        body += "<section class=\"live\"><h2>Live</h2><p class=\"muted\">Needs JavaScript; "
        body += "also at <a href=\"/api/live?" + Escape.html(siteQuery) + "\">/api/live</a> (Server-Sent Events).</p>"
        body += "<ul id=\"live\"></ul></section>"
        return layout(title: site, site: site, body: body)
    }

    static func login(failed: Bool, next: String) -> String {
        var body = "<h1>Log in</h1>"
        if failed { body += "<p class=\"error\">Wrong token.</p>" }
        body += "<form method=\"post\" action=\"/login\"><input type=\"hidden\" name=\"next\" value=\"" + Escape.html(next) + "\">"
        body += "<label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label>"
        body += "<button>Log in</button></form>"
        return layout(title: "Log in", body: body)
    }

    static func message(title: String, text: String, login: Bool = false) -> String {
        var body = "<h1>" + Escape.html(title) + "</h1><p>" + Escape.html(text) + "</p>"
        if login { body += "<p><a href=\"/login\">Log in</a></p>" }
        return layout(title: title, body: body)
    }

    /// A headline number with its change from the previous period: in percent of it, rounded to the
    /// nearest (−0.9 % shows as −1 %), or — `inPoints`, for a rate given in tenths of a percent — the
    /// difference in percentage points (a bounce rate from 40 % to 42 % is +2 pp, not +5 %). Without
    /// a previous number (`before` `nil`: that period reaches past the retention) a "–" whose title
    /// says so; a plain "–" when the numbers are not `comparable` (a rate over no visits).
    static func card(
        _ id: String, _ title: String, _ value: String, _ current: Int, _ before: Int?, lowerIsBetter: Bool = false,
        inPoints: Bool = false, comparable: Bool = true
    ) -> String {
        var change = "<span class=\"change\">–</span>"
        if comparable, before == nil {
            change = "<span class=\"change\" title=\"not compared: the previous period starts before the oldest day kept "
                + "(--retention-days)\">–</span>"
        } else if comparable, let before, inPoints || before > 0 {
            let delta = inPoints
                ? Int((Double(current - before) / 10).rounded()) : Int((Double(current - before) * 100 / Double(before)).rounded())
            let good = lowerIsBetter ? delta <= 0 : delta >= 0
            let sign = delta > 0 ? "+" : delta < 0 ? "−" : "±"
            change = "<span class=\"change \(good ? "up" : "down")\">\(sign)\(abs(delta)) \(inPoints ? "pp" : "%")</span>"
        }
        return "<div class=\"card\" id=\"stat-\(id)\"><div class=\"label\">\(title)</div><div class=\"value\">"
            + Escape.html(value) + "</div>" + change + "</div>"
    }

    /// A count, or "–" when it is unknown (a damaged rollup key), with a title that says so.
    static func number(_ count: Int?) -> String {
        count.map { String($0) } ?? "<span title=\"unknown: a damaged rollup key (see the server's log)\">–</span>"
    }

    static func percent(_ fraction: Double) -> String {
        let tenths = Int((fraction * 1000).rounded())
        return "\(tenths / 10).\(tenths % 10) %"
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 60 ? "\(total / 60) min \(total % 60) s" : "\(total) s"
    }

    static let css = """
        :root{--fg:#1f2933;--muted:#66788a;--accent:#4f46e5;--bg:#f7f8fa;--card:#fff;--line:#e4e7eb}
        *{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,sans-serif;color:var(--fg);background:var(--bg)}
        header{background:#111827;padding:.7rem 1.5rem}header a.brand{color:#fff;font-weight:700;text-decoration:none}
        main{max-width:1100px;margin:0 auto;padding:1rem 1.5rem}footer{color:var(--muted);font-size:.8rem;text-align:center;padding:2rem}
        h1{margin:.5rem 0}h2{font-size:1rem;margin:.2rem 0 .5rem}.muted{color:var(--muted)}.error{color:#b91c1c}
        a{color:var(--accent)}table{width:100%;border-collapse:collapse}th,td{padding:.3rem .4rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:middle}
        td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}.sites td{background:var(--card)}
        .periods{display:flex;flex-wrap:wrap;gap:.6rem;align-items:center;margin:.5rem 0}.periods a{padding:.2rem .6rem;border-radius:4px;background:var(--card);border:1px solid var(--line);text-decoration:none}
        .periods a[aria-current]{background:var(--accent);color:#fff}.custom{display:flex;gap:.4rem;align-items:center}
        .headline{display:grid;grid-template-columns:repeat(5,1fr);gap:.8rem;margin:1rem 0}.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.7rem}
        .card .label{color:var(--muted);font-size:.8rem;text-transform:uppercase}.card .value{font-size:1.6rem;font-weight:700}
        .change{font-size:.8rem;color:var(--muted)}.change.up{color:#15803d}.change.down{color:#b91c1c}
        .realtime{font-weight:600}.filter{background:#eef2ff;border:1px solid var(--line);border-radius:6px;padding:.5rem .7rem}.realtime #realtime{color:var(--accent)}
        section.chart{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.7rem}
        svg.chart{width:100%;height:auto}svg .grid{stroke:var(--line)}svg .axis{fill:var(--muted);font-size:11px}
        svg .area{fill:#c7d2fe;opacity:.6}svg .line{fill:none;stroke:var(--accent);stroke-width:2}svg .point{fill:var(--accent)}
        svg.spark .line{stroke-width:1.5}
        .tables{display:grid;grid-template-columns:repeat(2,1fr);gap:.8rem;margin:1rem 0}.table{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:.7rem;overflow:hidden}
        .table td{position:relative}.bar{position:absolute;left:0;top:15%;height:70%;background:#eef2ff;z-index:0}.name{position:relative;z-index:1;word-break:break-all}
        .csv{font-size:.8rem}#live{list-style:none;padding:0;font-family:ui-monospace,monospace;font-size:.85rem}
        @media (max-width:800px){.headline{grid-template-columns:repeat(2,1fr)}.tables{grid-template-columns:1fr}}
        """ + (0...20).map { ".bar.w\($0 * 5){width:\($0 * 5)%}" }.joined()

    static let javascript = """
        "use strict";
        (function () {
          var site = document.body.getAttribute("data-site");
          var list = document.getElementById("live");
          var counter = document.getElementById("realtime");
          if (!site || !list || !window.EventSource) return;
          var query = "site=" + encodeURIComponent(site);
          var source = new EventSource("/api/live?" + query);
          source.addEventListener("hit", function (message) {
            var event;
            try { event = JSON.parse(message.data); } catch (e) { return; }
            var item = document.createElement("li");
            var stamp = new Date((event.ts || 0) * 1000).toISOString();
            // Without the token an event has the minute only, and no country nor schema version `v`:
            // show what there is.
            var time = "v" in event ? stamp.slice(11, 19) : stamp.slice(11, 16);
            item.textContent = [time, event.event, event.path, event.source, event.country]
              .filter(function (part) { return part; }).join("  ");
            list.insertBefore(item, list.firstChild);
            while (list.children.length > 50) list.removeChild(list.lastChild);
          });
          setInterval(function () {
            fetch("/api/realtime?" + query, {credentials: "same-origin"})
              .then(function (r) { return r.ok ? r.json() : null; })
              .then(function (j) { if (j && counter) counter.textContent = String(j.visitors); });
          }, 15000);
        })();
        """
}
