/// Inline SVG charts drawn on the server: no script, no external request, no inline style (the CSP
/// forbids it); colours come from the stylesheet through classes.
enum SVGChart {
    /// An area + line chart of `values` over the x axis of `labels` (every few shown), with a y axis
    /// with the maximum. A `nil` value (unknown) is a gap in the line; `values` may be shorter than
    /// `labels`: the slots after them (hours still to come) are axis only.
    static func timeSeries(values: [Int?], labels: [String], title: String, width: Int = 720, height: Int = 220) -> String {
        let left = 44.0
        let right = 8.0
        let top = 12.0
        let bottom = 28.0
        let plotWidth = Double(width) - left - right
        let plotHeight = Double(height) - top - bottom
        let slots = max(values.count, labels.count)
        let maximum = max(1, values.compactMap { $0 }.max() ?? 0)
        let step = slots > 1 ? plotWidth / Double(slots - 1) : 0
        func x(_ index: Int) -> Double { slots > 1 ? left + Double(index) * step : left + plotWidth / 2 }
        func y(_ value: Int) -> Double { top + plotHeight - Double(value) / Double(maximum) * plotHeight }
        var svg = "<svg class=\"chart\" id=\"chart\" role=\"img\" viewBox=\"0 0 \(width) \(height)\" "
        svg += "width=\"\(width)\" height=\"\(height)\" xmlns=\"http://www.w3.org/2000/svg\">"
        svg += "<title>" + Escape.html(title) + "</title>"
        // Grid: 0, half, max.
        for fraction in [0.0, 0.5, 1.0] {
            let value = Int((Double(maximum) * fraction).rounded())
            let gy = format(y(value))
            svg += "<line class=\"grid\" x1=\"\(format(left))\" y1=\"\(gy)\" x2=\"\(format(left + plotWidth))\" y2=\"\(gy)\"/>"
            svg += "<text class=\"axis\" x=\"\(format(left - 6))\" y=\"\(gy)\" text-anchor=\"end\" dominant-baseline=\"middle\">\(value)</text>"
        }
        // One area and line per run of known values.
        for run in runs(values) {
            var line = ""
            for index in run {
                line += (index == run.lowerBound ? "M" : "L") + format(x(index)) + "," + format(y(values[index] ?? 0))
            }
            let area = line + "L" + format(x(run.upperBound - 1)) + "," + format(top + plotHeight) + "L" + format(x(run.lowerBound))
                + "," + format(top + plotHeight) + "Z"
            svg += "<path class=\"area\" d=\"\(area)\"/>"
            svg += "<path class=\"line\" d=\"\(line)\"/>"
        }
        for (index, value) in values.enumerated() {
            guard let value else { continue }
            let label = index < labels.count ? labels[index] : ""
            svg += "<circle class=\"point\" cx=\"\(format(x(index)))\" cy=\"\(format(y(value)))\" r=\"3\">"
            svg += "<title>" + Escape.html(label) + ": \(value)</title></circle>"
        }
        let every = max(1, Int((Double(slots) / 8).rounded(.up)))
        for index in stride(from: 0, to: labels.count, by: every) {
            svg += "<text class=\"axis\" x=\"\(format(x(index)))\" y=\"\(height - 8)\" text-anchor=\"middle\">"
            svg += Escape.html(shortLabel(labels[index])) + "</text>"
        }
        return svg + "</svg>"
    }

    /// A small trend line without axes, for the site list; a `nil` value is a gap.
    static func sparkline(values: [Int?], width: Int = 120, height: Int = 28) -> String {
        let maximum = max(1, values.compactMap { $0 }.max() ?? 0)
        let step = values.count > 1 ? Double(width - 4) / Double(values.count - 1) : 0
        var line = ""
        for run in runs(values) {
            for index in run {
                let px = 2 + Double(index) * step
                let py = 2 + Double(height - 4) * (1 - Double(values[index] ?? 0) / Double(maximum))
                line += (index == run.lowerBound ? "M" : "L") + format(px) + "," + format(py)
            }
        }
        return "<svg class=\"spark\" viewBox=\"0 0 \(width) \(height)\" width=\"\(width)\" height=\"\(height)\" "
            + "xmlns=\"http://www.w3.org/2000/svg\" aria-hidden=\"true\"><path class=\"line\" d=\"\(line)\"/></svg>"
    }

    /// The index ranges of `values` without a `nil`.
    static func runs(_ values: [Int?]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        var start: Int?
        for (index, value) in values.enumerated() {
            if value == nil, let first = start {
                result.append(first..<index)
                start = nil
            } else if value != nil, start == nil {
                start = index
            }
        }
        if let start { result.append(start..<values.count) }
        return result
    }

    /// `2026-11-22` → `11-22`; hours unchanged.
    static func shortLabel(_ label: String) -> String {
        label.utf8.count == 10 ? String(label.dropFirst(5)) : label + "h"
    }

    /// One decimal place, no locale.
    static func format(_ value: Double) -> String {
        let tenths = Int((value * 10).rounded())
        return tenths % 10 == 0 ? String(tenths / 10) : String(tenths / 10) + "." + String(abs(tenths % 10))
    }
}
