//! Charts as SVG text: daily stacked bars, top-N horizontal bars and a share meter.
//!
//! Input is figures the caller already rolled up; output is one `<svg>` element with a
//! `viewBox` and `width="100%"`, so it scales from a phone to a wide screen. Axes use round
//! 1-2-5 steps labelled `2,500` or `25k`; every bar carries a `<title>` with its exact figure,
//! and every text from the caller (titles, series and bar labels, CSS class names) is
//! XML-escaped. Colours come from CSS classes (see [`DEFAULT_STYLE`]), never from attributes.
//! Empty input draws the frame with a "No data for this period" text instead of an empty plot.

use std::fmt::Write as _;

use crate::digest::thousands;

/// One stacked layer of [`stacked_daily`]: a label for the legend, the CSS class that colours
/// it (`c-compliant`, `c-forwarded`, `c-misconfigured`, `c-unknown`, `c-pass`, `c-fail`,
/// `c-other`) and one value per day, in the order of the days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub label: String,
    pub css_class: String,
    pub values: Vec<u64>,
}

/// One row of [`horizontal_bars`]: the total and the failing part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bar {
    pub label: String,
    pub total: u64,
    pub failing: u64,
}

/// Default colours, light and dark. Every selector is wrapped in `:where()` so it has zero
/// specificity: any rule of the page (`.c-compliant { fill: ... }`) overrides it. Text takes
/// `currentColor`, so charts follow the page's text colour. Okabe-Ito colours for the classes,
/// cividis for the map's volume buckets (both readable with colour-vision deficiency).
pub const DEFAULT_STYLE: &str = "\
:where(.dp-svg text){font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:12px;fill:currentColor}\
:where(.dp-svg .title){font-size:15px;font-weight:600}\
:where(.dp-svg .big){font-size:24px;font-weight:700}\
:where(.dp-meter .label){font-size:16px}:where(.dp-meter .none){font-size:18px}\
:where(.dp-map text){font-size:16px}:where(.dp-map .title){font-size:20px}\
:where(.dp-svg .muted){fill-opacity:.75}\
:where(.dp-svg .grid){stroke:currentColor;stroke-opacity:.15;stroke-width:1}\
:where(.dp-svg .axis){stroke:currentColor;stroke-opacity:.55;stroke-width:1}\
:where(.dp-svg .meter-track){fill:currentColor;fill-opacity:.12}\
:where(.c-compliant){fill:#0072B2}:where(.c-forwarded){fill:#56B4E9}\
:where(.c-misconfigured){fill:#E69F00}:where(.c-unknown){fill:#D55E00}\
:where(.c-pass){fill:#009E73}:where(.c-fail){fill:#D55E00}:where(.c-other){fill:#999999}\
:where(.dp-map .country){stroke:#ffffff;stroke-width:.5;stroke-linejoin:round}\
:where(.dp-map .dot){stroke:#ffffff;stroke-width:1}\
:where(.dp-map .dot-fail){stroke:#D55E00;stroke-width:2.5}\
:where(.dp-map .hatch-casing){fill:#ffffff}:where(.dp-map .hatch-line){fill:#D55E00}\
:where(.m-0){fill:#d9d9d9}:where(.m-1){fill:#fde945}:where(.m-2){fill:#c8b866}\
:where(.m-3){fill:#8e8a78}:where(.m-4){fill:#575d6d}:where(.m-5){fill:#00224e}\
@media (prefers-color-scheme:dark){\
:where(.c-compliant){fill:#3d9be0}:where(.c-forwarded){fill:#7cc6ef}\
:where(.c-misconfigured){fill:#f0ad28}:where(.c-unknown){fill:#f0703a}\
:where(.c-pass){fill:#2fbf8f}:where(.c-fail){fill:#f0703a}:where(.c-other){fill:#8a8a8a}\
:where(.dp-map .country){stroke:#1b1b1b}:where(.dp-map .dot){stroke:#1b1b1b}\
:where(.dp-map .hatch-casing){fill:#1b1b1b}:where(.dp-map .hatch-line){fill:#f0703a}\
:where(.m-0){fill:#3c3f44}:where(.m-1){fill:#2a4d8f}:where(.m-2){fill:#6b7391}\
:where(.m-3){fill:#a39e82}:where(.m-4){fill:#d2bf5e}:where(.m-5){fill:#fde945}}\
@media (max-width:640px){:where(.dp-chart text){font-size:15px}:where(.dp-chart .title){font-size:17px}}\
@media print{:where(.dp-svg text){fill:#000000}}";

/// Width reserved per character of a label: room for the 15 px font that narrow screens get
/// (12 px elsewhere), so legends and labels do not overlap on a phone.
const CHAR_WIDTH: f64 = 8.2;
const WIDTH: f64 = 720.0;

/// Daily stacked bars (one bar per day, one segment per series, the first series at the
/// bottom); `days` are ISO dates "2026-11-30". A series with fewer values than days counts the
/// missing days as zero; values beyond the days are not drawn. No days, or only zeros, draw a
/// "No data for this period" text.
pub fn stacked_daily(days: &[String], series: &[Series], title: &str) -> String {
    let value = |layer: &Series, day: usize| layer.values.get(day).copied().unwrap_or(0);
    let totals: Vec<u64> = (0..days.len()).map(|day| series.iter().map(|layer| value(layer, day)).sum()).collect();
    let grand_total: u64 = totals.iter().sum();
    let span = match (days.first(), days.last()) {
        (Some(first), Some(last)) if first != last => format!("{first} to {last}"),
        (Some(first), _) => first.clone(),
        _ => "no days".to_owned(),
    };
    let mut desc = format!("Messages per day, {span}: {} in all", thousands(grand_total.into()));
    for layer in series {
        let sum: u64 = (0..days.len()).map(|day| value(layer, day)).sum();
        let _ = write!(desc, "; {} {}", layer.label, thousands(sum.into()));
    }
    desc.push('.');

    if grand_total == 0 {
        return no_data(title, &desc, 140.0);
    }
    let height = 330.0;
    let mut svg = Svg::open("dp-chart", WIDTH, height, title, &desc);
    svg.title(title);
    let legend: Vec<(String, &str)> = series
        .iter()
        .map(|layer| {
            let sum: u64 = (0..days.len()).map(|day| value(layer, day)).sum();
            (format!("{} ({})", layer.label, thousands(sum.into())), layer.css_class.as_str())
        })
        .collect();
    let legend_bottom = svg.legend(&legend, 12.0, 42.0);

    let left = 56.0;
    let right = WIDTH - 12.0;
    let top = legend_bottom + 14.0;
    let bottom = height - 40.0;
    let max_total = totals.iter().copied().max().unwrap_or(0);
    let axis = Ticks::new(max_total, 5);
    let scale = (bottom - top) / axis.top as f64;
    svg.y_grid(&axis, left, right, bottom, scale);

    let band = (right - left) / days.len() as f64;
    let bar_width = (band * 0.75).min(48.0);
    let label_every = ((6.0 * CHAR_WIDTH + 12.0) / band).ceil().max(1.0) as usize;
    let mut labelled_year = None;
    for (day, date) in days.iter().enumerate() {
        let x = left + band * day as f64 + (band - bar_width) / 2.0;
        let _ = write!(svg.out, "<g><title>{}: {} messages</title>", escape(date), thousands(totals[day].into()));
        let mut y = bottom;
        for layer in series {
            let count = value(layer, day);
            if count == 0 {
                continue;
            }
            let h = count as f64 * scale;
            y -= h;
            let _ = write!(
                svg.out,
                "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"><title>{}: {} {}</title></rect>",
                escape(&layer.css_class),
                num(x),
                num(y),
                num(bar_width),
                num(h),
                escape(date),
                escape(&layer.label),
                thousands(count.into()),
            );
        }
        svg.out.push_str("</g>");
        if day % label_every == 0 {
            let (label, year) = day_label(date);
            let centre = num(x + bar_width / 2.0);
            let _ = write!(
                svg.out,
                "<text x=\"{centre}\" y=\"{}\" text-anchor=\"middle\">{}",
                num(bottom + 16.0),
                escape(&label)
            );
            if year.is_some() && year != labelled_year {
                let _ = write!(
                    svg.out,
                    "<tspan class=\"muted\" x=\"{centre}\" dy=\"14\">{}</tspan>",
                    escape(year.unwrap_or_default())
                );
                labelled_year = year;
            }
            svg.out.push_str("</text>");
        }
    }
    svg.line("axis", left, bottom, right, bottom);
    svg.close()
}

/// Horizontal bars for a top-N list, largest first as given: the label, the total as a bar
/// whose failing part is drawn as a `c-fail` segment after the passing `c-pass` part, and the
/// figures written after the bar. A failing count above the total is drawn as all failing.
pub fn horizontal_bars(bars: &[Bar], title: &str) -> String {
    let total: u64 = bars.iter().map(|bar| bar.total).sum();
    let failing: u64 = bars.iter().map(|bar| bar.failing.min(bar.total)).sum();
    let mut desc =
        format!("{} rows, {} messages, {} failing", bars.len(), thousands(total.into()), thousands(failing.into()));
    for bar in bars.iter().take(10) {
        let _ = write!(desc, "; {}: {}", bar.label, thousands(bar.total.into()));
    }
    desc.push('.');

    let row = 28.0;
    let top = 66.0;
    if total == 0 {
        return no_data(title, &desc, 150.0);
    }
    let height = top + row * bars.len() as f64 + 30.0;
    let mut svg = Svg::open("dp-chart", WIDTH, height, title, &desc);
    svg.title(title);
    svg.legend(&[("Passing".to_owned(), "c-pass"), ("Failing".to_owned(), "c-fail")], 12.0, 42.0);

    let label_right = 196.0;
    let left = 204.0;
    let right = WIDTH - 200.0;
    let bottom = top + row * bars.len() as f64;
    let axis = Ticks::new(bars.iter().map(|bar| bar.total).max().unwrap_or(0), 4);
    let scale = (right - left) / axis.top as f64;
    let mut tick = 0;
    while tick <= axis.top {
        let x = num(left + tick as f64 * scale);
        let _ = write!(
            svg.out,
            "<line class=\"grid\" x1=\"{x}\" y1=\"{}\" x2=\"{x}\" y2=\"{}\"/><text x=\"{x}\" y=\"{}\" text-anchor=\"middle\" class=\"muted\">{}</text>",
            num(top - 4.0),
            num(bottom),
            num(bottom + 16.0),
            compact(tick)
        );
        tick += axis.step;
    }
    for (index, bar) in bars.iter().enumerate() {
        let y = top + row * index as f64;
        let failing = bar.failing.min(bar.total);
        let share = ratio(failing, bar.total);
        let _ = write!(
            svg.out,
            "<g><title>{}: {} messages, {} failing ({})</title>",
            escape(&bar.label),
            thousands(bar.total.into()),
            thousands(failing.into()),
            percent(share)
        );
        let _ = write!(
            svg.out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            num(label_right),
            num(y + row / 2.0 + 4.0),
            escape(&truncate(&bar.label, 21))
        );
        let passing_width = (bar.total - failing) as f64 * scale;
        let failing_width = failing as f64 * scale;
        for (class, x, width) in [("c-pass", left, passing_width), ("c-fail", left + passing_width, failing_width)] {
            if width > 0.0 {
                let _ = write!(
                    svg.out,
                    "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                    num(x),
                    num(y + 5.0),
                    num(width),
                    num(row - 10.0)
                );
            }
        }
        let _ = write!(
            svg.out,
            "<text x=\"{}\" y=\"{}\">{} · {} failing</text></g>",
            num(left + passing_width + failing_width + 6.0),
            num(y + row / 2.0 + 4.0),
            thousands(bar.total.into()),
            percent(share)
        );
    }
    svg.line("axis", left, top - 4.0, left, bottom);
    svg.close()
}

/// A ring meter for a headline share, e.g. DMARC compliance `0.973` drawn as 97.3 % of a ring
/// with the percentage in its middle and `label` under it. A share outside 0..=1 is clamped;
/// NaN draws an empty ring marked "no data".
pub fn share_meter(share: f64, label: &str) -> String {
    let known = !share.is_nan();
    let share = if known { share.clamp(0.0, 1.0) } else { 0.0 };
    let figure = if known { percent(Some(share)) } else { "no data".to_owned() };
    let desc = format!("{label}: {figure}");
    let (cx, cy, outer, inner) = (110.0, 86.0, 70.0, 50.0);
    let mut svg = Svg::open("dp-meter", 220.0, 196.0, label, &desc);
    let _ = write!(
        svg.out,
        "<path class=\"meter-track\" fill-rule=\"evenodd\" d=\"{}\"/>",
        ring_sector(cx, cy, outer, inner, 1.0)
    );
    if share > 0.0 {
        let _ = write!(
            svg.out,
            "<path class=\"c-pass\" fill-rule=\"evenodd\" d=\"{}\"/>",
            ring_sector(cx, cy, outer, inner, share)
        );
    }
    let _ = write!(
        svg.out,
        "<text class=\"{}\" x=\"{cx}\" y=\"{}\" text-anchor=\"middle\">{}</text><text class=\"label\" x=\"{cx}\" y=\"186\" text-anchor=\"middle\">{}</text>",
        if known { "big" } else { "none muted" },
        num(cy + if known { 10.0 } else { 6.0 }),
        escape(&figure),
        escape(&truncate(label, 24))
    );
    svg.close()
}

/// The path of a ring from 12 o'clock clockwise over `share` of the full turn.
fn ring_sector(cx: f64, cy: f64, outer: f64, inner: f64, share: f64) -> String {
    if share >= 0.9999 {
        // A full ring: an arc cannot end where it starts, so two half circles per edge.
        return format!(
            "M{x} {a}A{outer} {outer} 0 1 1 {x} {b}A{outer} {outer} 0 1 1 {x} {a}ZM{x} {c}A{inner} {inner} 0 1 0 {x} {d}A{inner} {inner} 0 1 0 {x} {c}Z",
            x = num(cx),
            a = num(cy - outer),
            b = num(cy + outer),
            c = num(cy - inner),
            d = num(cy + inner),
        );
    }
    let angle = share * std::f64::consts::TAU;
    let large = u8::from(share > 0.5);
    let (sin, cos) = angle.sin_cos();
    format!(
        "M{} {}A{outer} {outer} 0 {large} 1 {} {}L{} {}A{inner} {inner} 0 {large} 0 {} {}Z",
        num(cx),
        num(cy - outer),
        num(cx + outer * sin),
        num(cy - outer * cos),
        num(cx + inner * sin),
        num(cy - inner * cos),
        num(cx),
        num(cy - inner),
    )
}

fn no_data(title: &str, desc: &str, height: f64) -> String {
    let mut svg = Svg::open("dp-chart", WIDTH, height, title, desc);
    svg.title(title);
    let _ = write!(
        svg.out,
        "<text class=\"muted\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">No data for this period</text>",
        num(WIDTH / 2.0),
        num(height / 2.0 + 20.0)
    );
    svg.close()
}

/// An SVG document being written.
pub(crate) struct Svg {
    pub(crate) out: String,
}

impl Svg {
    /// The opening tag, accessible name and description, and the default style.
    pub(crate) fn open(class: &str, width: f64, height: f64, title: &str, desc: &str) -> Svg {
        let mut out = String::with_capacity(8192);
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"dp-svg {class}\" viewBox=\"0 0 {} {}\" width=\"100%\" role=\"img\"><title>{}</title><desc>{}</desc><style>{DEFAULT_STYLE}</style>",
            num(width),
            num(height),
            escape(title),
            escape(desc)
        );
        Svg { out }
    }

    /// The visible heading at the top left.
    pub(crate) fn title(&mut self, title: &str) {
        let _ = write!(self.out, "<text class=\"title\" x=\"12\" y=\"22\">{}</text>", escape(title));
    }

    /// Swatches with labels, flowing left to right and wrapping; returns the bottom edge.
    pub(crate) fn legend(&mut self, entries: &[(String, &str)], left: f64, top: f64) -> f64 {
        let (mut x, mut y) = (left, top);
        for (label, class) in entries {
            let width = 18.0 + label.chars().count() as f64 * CHAR_WIDTH + 12.0;
            if x > left && x + width > WIDTH - 12.0 {
                x = left;
                y += 20.0;
            }
            let _ = write!(
                self.out,
                "<rect class=\"{}\" x=\"{}\" y=\"{}\" width=\"12\" height=\"12\"/><text x=\"{}\" y=\"{}\">{}</text>",
                escape(class),
                num(x),
                num(y - 10.0),
                num(x + 17.0),
                num(y),
                escape(label)
            );
            x += width;
        }
        y + 4.0
    }

    /// Horizontal grid lines and value labels at every tick of `axis`.
    fn y_grid(&mut self, axis: &Ticks, left: f64, right: f64, bottom: f64, scale: f64) {
        let mut tick = 0;
        while tick <= axis.top {
            let y = num(bottom - tick as f64 * scale);
            let _ = write!(
                self.out,
                "<line class=\"grid\" x1=\"{}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\"/><text class=\"muted\" x=\"{}\" y=\"{y}\" dy=\"4\" text-anchor=\"end\">{}</text>",
                num(left),
                num(right),
                num(left - 6.0),
                compact(tick)
            );
            tick += axis.step;
        }
    }

    pub(crate) fn line(&mut self, class: &str, x1: f64, y1: f64, x2: f64, y2: f64) {
        let _ = write!(
            self.out,
            "<line class=\"{class}\" x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/>",
            num(x1),
            num(y1),
            num(x2),
            num(y2)
        );
    }

    pub(crate) fn close(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// A value axis from zero: a round step (1, 2 or 5 times a power of ten) and the first
/// multiple of it at or above the largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ticks {
    pub(crate) step: u64,
    pub(crate) top: u64,
}

impl Ticks {
    /// About `count` steps up to `max`.
    pub(crate) fn new(max: u64, count: u64) -> Ticks {
        let raw = max.div_ceil(count.max(1)).max(1);
        let mut magnitude: u64 = 1;
        while magnitude.saturating_mul(10) <= raw {
            magnitude *= 10;
        }
        let step = [1, 2, 5, 10]
            .iter()
            .map(|factor| magnitude.saturating_mul(*factor))
            .find(|step| *step >= raw)
            .unwrap_or(raw);
        Ticks { step, top: max.div_ceil(step).max(1).saturating_mul(step) }
    }
}

/// The largest 1-2-5 value at or below `value` (at least 1).
pub(crate) fn round_down(value: u64) -> u64 {
    let mut magnitude: u64 = 1;
    while magnitude.saturating_mul(10) <= value {
        magnitude *= 10;
    }
    [5, 2, 1].iter().map(|factor| magnitude * factor).find(|round| *round <= value).unwrap_or(1)
}

/// An axis label: `950`, `2,500`, `25k`, `2.5M`, `1G`.
pub(crate) fn compact(value: u64) -> String {
    let scaled = |unit: u64, suffix: &str| {
        let whole = value / unit;
        let tenth = value % unit * 10 / unit;
        if tenth == 0 { format!("{whole}{suffix}") } else { format!("{whole}.{tenth}{suffix}") }
    };
    match value {
        0..10_000 => thousands(value.into()),
        10_000..1_000_000 => scaled(1_000, "k"),
        1_000_000..1_000_000_000 => scaled(1_000_000, "M"),
        _ => scaled(1_000_000_000, "G"),
    }
}

/// `part / whole`, none when the whole is zero.
pub(crate) fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// `0.0312` as `3.1 %`; a share below 100 % never shows as `100.0 %`, and one above zero
/// never as `0.0 %`.
pub(crate) fn percent(share: Option<f64>) -> String {
    let Some(share) = share else { return "–".to_owned() };
    let tenths = (share * 1000.0).round();
    if share > 0.0 && tenths < 1.0 {
        return "< 0.1 %".to_owned();
    }
    let tenths = if tenths >= 1000.0 && share < 1.0 { 999.0 } else { tenths };
    format!("{:.1} %", tenths / 10.0)
}

/// A coordinate with at most two decimals and no trailing zeros.
pub(crate) fn num(value: f64) -> String {
    let text = format!("{:.2}", value);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" { "0".to_owned() } else { text.to_owned() }
}

/// Text safe inside XML elements and double- or single-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0 at all.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// At most `limit` characters, the last one an ellipsis when cut.
fn truncate(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(limit - 1).collect();
    cut.push('…');
    cut
}

/// "2026-11-30" as ("Nov 30", Some("2026")); anything else as itself, no year.
fn day_label(date: &str) -> (String, Option<&str>) {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let mut parts = date.splitn(3, '-');
    if let (Some(year), Some(month), Some(day)) = (parts.next(), parts.next(), parts.next())
        && year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && let (Ok(month), Ok(day)) = (month.parse::<usize>(), day.parse::<u8>())
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
    {
        return (format!("{} {day}", MONTHS[month - 1]), Some(year));
    }
    (date.to_owned(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(Ticks::new(0, 5), Ticks { step: 1, top: 1 });
        assert_eq!(Ticks::new(7, 5), Ticks { step: 2, top: 8 });
        assert_eq!(Ticks::new(100, 5), Ticks { step: 20, top: 100 });
        assert_eq!(Ticks::new(1234, 5), Ticks { step: 500, top: 1500 });
        assert_eq!(Ticks::new(98_000, 4), Ticks { step: 50_000, top: 100_000 });
        assert_eq!(Ticks::new(u64::MAX, 5).top, u64::MAX);
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(compact(950), "950");
        assert_eq!(compact(2500), "2,500");
        assert_eq!(compact(25_000), "25k");
        assert_eq!(compact(2_500_000), "2.5M");
        assert_eq!(compact(3_000_000_000), "3G");
        assert_eq!(round_down(0), 1);
        assert_eq!(round_down(74), 50);
        assert_eq!(round_down(1999), 1000);
        assert_eq!(round_down(2000), 2000);
        assert_eq!(percent(Some(0.0312)), "3.1 %");
        assert_eq!(percent(Some(0.99999)), "99.9 %");
        assert_eq!(percent(Some(0.00001)), "< 0.1 %");
        assert_eq!(percent(Some(1.0)), "100.0 %");
        assert_eq!(percent(None), "–");
        assert_eq!(num(12.0), "12");
        assert_eq!(num(12.345), "12.35");
        assert_eq!(num(-0.001), "0");
    }

    #[test]
    fn days_are_labelled_by_month_and_odd_text_is_kept() {
        assert_eq!(day_label("2026-11-30"), ("Nov 30".to_owned(), Some("2026")));
        assert_eq!(day_label("2026-13-30"), ("2026-13-30".to_owned(), None));
        assert_eq!(day_label("week 48"), ("week 48".to_owned(), None));
    }

    #[test]
    fn default_colours_have_zero_specificity_so_the_page_wins() {
        let rules = DEFAULT_STYLE.replace("@media (prefers-color-scheme:dark){", "").replace("@media print{", "");
        let rules = rules.replace("@media (max-width:640px){", "");
        for rule in rules.split('}').map(str::trim).filter(|rule| !rule.is_empty()) {
            let selector = rule.split('{').next().unwrap_or_default();
            assert!(selector.starts_with(":where(") && selector.ends_with(')'), "{rule}");
        }
        for class in ["c-compliant", "c-forwarded", "c-misconfigured", "c-unknown", "c-pass", "c-fail", "m-0", "m-5"] {
            assert_eq!(DEFAULT_STYLE.matches(&format!(":where(.{class})")).count(), 2, "{class} light and dark");
        }
    }

    #[test]
    fn escaping_covers_markup_quotes_and_control_characters() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;\u{FFFD}"
        );
    }
}
