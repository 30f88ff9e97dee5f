import Foundation
import GoFetchEvents

/// Charts as inline SVG text: the report works offline, with no script and no
/// library. Every bar and point carries a `<title>` (the browser shows it on hover).
enum SVGChart {
    struct Series {
        var name: String
        var color: String
        var values: [Double]
    }

    static let width = 720.0
    static let height = 260.0
    private static let left = 64.0, right = 16.0, top = 28.0, bottom = 44.0

    /// Bars per category, side by side or stacked; `format` writes a value for axes and titles.
    static func bars(
        categories: [String], series: [Series], stacked: Bool = false, yLabel: String,
        format: (Double) -> String, labelEvery: Int = 1
    ) -> String {
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let totals = categories.indices.map { index in
            stacked ? series.reduce(0) { $0 + max(0, value($1, index)) } : series.map { max(0, value($0, index)) }.max() ?? 0
        }
        let ticks = niceTicks(maximum: totals.max() ?? 0)
        let top = ticks.last ?? 1
        var svg = open(label: yLabel)
        svg += axes(ticks: ticks, format: format, yLabel: yLabel)
        let slot = plotWidth / Double(max(categories.count, 1))
        let groupWidth = slot * 0.8
        let barWidth = stacked ? groupWidth : groupWidth / Double(max(series.count, 1))
        for (index, category) in categories.enumerated() {
            let x0 = left + slot * Double(index) + (slot - groupWidth) / 2
            var base = 0.0
            for (number, item) in series.enumerated() {
                let v = max(0, value(item, index))
                let h = v / top * plotHeight
                let x = stacked ? x0 : x0 + barWidth * Double(number)
                let y = stacked ? Self.top + plotHeight - (base + v) / top * plotHeight : Self.top + plotHeight - h
                svg += "<rect x=\"\(n(x))\" y=\"\(n(y))\" width=\"\(n(max(barWidth - (stacked ? 0 : 1), 0.5)))\" height=\"\(n(h))\" fill=\"\(item.color)\">"
                svg += "<title>\(escape(category)) · \(escape(item.name)): \(escape(format(v)))</title></rect>"
                base += v
            }
            if index % max(labelEvery, 1) == 0 {
                svg += "<text x=\"\(n(left + slot * (Double(index) + 0.5)))\" y=\"\(n(Self.top + plotHeight + 16))\" text-anchor=\"middle\" class=\"tick\">\(escape(category))</text>"
            }
        }
        svg += legend(series)
        return svg + "</svg>"
    }

    /// Lines over a shared x axis (seconds since the run started).
    static func lines(x: [Double], series: [Series], yLabel: String, format: (Double) -> String) -> String {
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let ticks = niceTicks(maximum: series.flatMap(\.values).max() ?? 0)
        let top = ticks.last ?? 1
        let xTicks = niceTicks(maximum: x.last ?? 0)
        let xMax = xTicks.last ?? 1
        var svg = open(label: yLabel)
        svg += axes(ticks: ticks, format: format, yLabel: yLabel)
        for tick in xTicks {
            let px = left + tick / xMax * plotWidth
            svg += "<text x=\"\(n(px))\" y=\"\(n(Self.top + plotHeight + 16))\" text-anchor=\"middle\" class=\"tick\">\(Format.fixed(tick, max(tick < 10 ? 1 : 0, decimals(xTicks)))) s</text>"
        }
        for item in series {
            let points = zip(x, item.values).map { "\(n(left + $0 / xMax * plotWidth)),\(n(Self.top + plotHeight - max(0, $1) / top * plotHeight))" }
            svg += "<polyline fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"2\" points=\"\(points.joined(separator: " "))\">"
            svg += "<title>\(escape(item.name))</title></polyline>"
            // Points with their values, at most about 60 of them.
            let every = max(1, x.count / 60)
            for index in stride(from: 0, to: min(x.count, item.values.count), by: every) {
                svg += "<circle cx=\"\(n(left + x[index] / xMax * plotWidth))\" cy=\"\(n(Self.top + plotHeight - max(0, item.values[index]) / top * plotHeight))\" r=\"2.5\" fill=\"\(item.color)\">"
                svg += "<title>\(Format.fixed(x[index], 1)) s · \(escape(item.name)): \(escape(format(item.values[index])))</title></circle>"
            }
        }
        svg += legend(series)
        return svg + "</svg>"
    }

    /// Round tick values from 0 up to at least `maximum` (at most about 6 of them).
    static func niceTicks(maximum: Double) -> [Double] {
        guard maximum > 0, maximum.isFinite else { return [0, 1] }
        let rough = maximum / 5
        var magnitude = 1.0
        while magnitude * 10 <= rough { magnitude *= 10 }
        while magnitude > rough { magnitude /= 10 }
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= rough } ?? magnitude * 10
        var ticks = [0.0]
        while ticks.last! < maximum { ticks.append(ticks.last! + step) }
        return ticks
    }

    /// Digits after the point that tell `ticks` apart: their step is 1, 2 or 5 times a power of ten.
    static func decimals(_ ticks: [Double]) -> Int {
        guard ticks.count > 1, case let step = ticks[1] - ticks[0], step > 0, step < 1 else { return 0 }
        return Int((-log10(step) - 1e-9).rounded(.up))
    }

    private static func value(_ series: Series, _ index: Int) -> Double {
        index < series.values.count && series.values[index].isFinite ? series.values[index] : 0
    }

    private static func open(label: String) -> String {
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"\(escape(label))\">"
    }

    private static func axes(ticks: [Double], format: (Double) -> String, yLabel: String) -> String {
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        let top = ticks.last ?? 1
        // The caller's format, unless it writes two ticks alike (0.0075 s at two decimals
        // has ticks 0.00, 0.00, 0.00, 0.01, 0.01): then as many digits as the step needs.
        var labels = ticks.map(format)
        if Set(labels).count < labels.count {
            let digits = decimals(ticks)
            labels = ticks.map { Format.fixed($0, digits) }
        }
        var svg = ""
        for (tick, label) in zip(ticks, labels) {
            let y = Self.top + plotHeight - tick / top * plotHeight
            svg += "<line x1=\"\(n(left))\" x2=\"\(n(left + plotWidth))\" y1=\"\(n(y))\" y2=\"\(n(y))\" class=\"grid\"/>"
            svg += "<text x=\"\(n(left - 6))\" y=\"\(n(y + 4))\" text-anchor=\"end\" class=\"tick\">\(escape(label))</text>"
        }
        svg += "<line x1=\"\(n(left))\" x2=\"\(n(left))\" y1=\"\(n(Self.top))\" y2=\"\(n(Self.top + plotHeight))\" class=\"axis\"/>"
        svg += "<text x=\"\(n(left))\" y=\"\(n(Self.top - 10))\" class=\"label\">\(escape(yLabel))</text>"
        return svg
    }

    private static func legend(_ series: [Series]) -> String {
        var svg = "", x = width - right
        for item in series.reversed() {
            let textWidth = Double(item.name.count) * 6.6 + 22
            x -= textWidth
            svg += "<rect x=\"\(n(x))\" y=\"\(n(height - 16))\" width=\"10\" height=\"10\" fill=\"\(item.color)\"/>"
            svg += "<text x=\"\(n(x + 14))\" y=\"\(n(height - 7))\" class=\"legend\">\(escape(item.name))</text>"
        }
        return svg
    }

    private static func n(_ value: Double) -> String { Format.fixed(value, 1) }

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(character)
            }
        }
        return out
    }
}
