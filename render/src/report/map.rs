//! The world map: countries shaded by message volume, failure share hatched over them.
//!
//! Shapes come from `render/data/world-110m.tsv`, compiled in: Natural Earth 1:110m country
//! outlines (public domain) already projected (Equal Earth, 960 px wide) by
//! `scripts/world-map.py`, whose header records the source packages, versions and licences.
//! Countries too small for that scale (Singapore, Hong Kong, Malta, ...) are dots, drawn only
//! when they have data. Volume is shown in up to five buckets a decade apart below the largest
//! country (cividis colours, `m-1` .. `m-5`, `m-0` for no data); a failing share of 1 % or more
//! is hatched sparsely, 10 % or more densely (dots get a red ring). Every country carries a
//! `<title>` with its figures. Codes that have no shape or dot (`EU`, `AP`, typos) are left off
//! the map and counted under it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use super::chart::{Svg, compact, escape, num, percent, ratio, round_down};
use crate::digest::thousands;

/// Messages and failing messages from one country.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountryFigure {
    /// ISO 3166-1 alpha-2, upper case (lower case is accepted too).
    pub code: String,
    pub messages: u64,
    pub failing: u64,
}

const DATA: &str = include_str!("../../data/world-110m.tsv");
const TITLE_BAND: f64 = 34.0;
const LEGEND_BAND: f64 = 96.0;
/// Average width of a character of the map's 16 px legend font.
const CHAR_WIDTH: f64 = 8.8;
/// Failing shares at or above which a country is hatched sparsely, then densely.
const SOME_FAILING: f64 = 0.01;
const MANY_FAILING: f64 = 0.10;

/// How a country is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outline {
    /// SVG path data.
    Shape(&'static str),
    /// A dot at x, y: the country is too small for the map's scale.
    Dot(f64, f64),
}

#[derive(Debug)]
struct Country {
    code: &'static str,
    name: &'static str,
    outline: Outline,
}

#[derive(Debug)]
struct World {
    width: f64,
    height: f64,
    countries: Vec<Country>,
    /// Lines of the data file that did not parse (a test keeps this at zero).
    bad_lines: usize,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| parse(DATA))
}

fn parse(data: &'static str) -> World {
    let mut world = World { width: 0.0, height: 0.0, countries: Vec::new(), bad_lines: 0 };
    for line in data.lines().filter(|line| !line.starts_with('#') && !line.is_empty()) {
        let fields: Vec<&'static str> = line.split('\t').collect();
        let parsed = match fields.as_slice() {
            ["size", width, height] => match (width.parse::<f64>(), height.parse::<f64>()) {
                (Ok(width), Ok(height)) => {
                    world.width = width;
                    world.height = height;
                    true
                }
                _ => false,
            },
            ["shape", code, name, path] if code.len() == 2 && path.starts_with('M') => {
                world.countries.push(Country { code, name, outline: Outline::Shape(path) });
                true
            }
            ["dot", code, name, at] if code.len() == 2 => {
                match at.split_once(' ').map(|(x, y)| (x.parse::<f64>(), y.parse::<f64>())) {
                    Some((Ok(x), Ok(y))) => {
                        world.countries.push(Country { code, name, outline: Outline::Dot(x, y) });
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !parsed {
            world.bad_lines += 1;
        }
    }
    world
}

/// Message totals of one country, summed over the figures given for it.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    messages: u64,
    failing: u64,
}

impl Totals {
    fn failing_share(self) -> Option<f64> {
        ratio(self.failing.min(self.messages), self.messages)
    }

    fn describe(self, name: &str) -> String {
        if self.messages == 0 {
            return format!("{name}: no messages");
        }
        format!(
            "{name}: {} message{}, {} failing",
            thousands(self.messages.into()),
            if self.messages == 1 { "" } else { "s" },
            percent(self.failing_share())
        )
    }

    fn hatch(self) -> Option<&'static str> {
        match self.failing_share() {
            Some(share) if share >= MANY_FAILING => Some("dp-hatch-many"),
            Some(share) if share >= SOME_FAILING => Some("dp-hatch-some"),
            _ => None,
        }
    }
}

/// Volume buckets: lower bounds, smallest first, each a 1-2-5 value a decade below the next.
#[derive(Debug)]
struct Buckets {
    bounds: Vec<u64>,
}

impl Buckets {
    fn new(largest: u64) -> Buckets {
        let mut bounds = vec![1];
        for divisor in [10_000, 1_000, 100, 10] {
            let bound = round_down(largest / divisor);
            if bound > *bounds.last().unwrap_or(&0) {
                bounds.push(bound);
            }
        }
        Buckets { bounds }
    }

    /// `m-0` for no messages; otherwise the top bucket is always `m-5`.
    fn class(&self, messages: u64) -> String {
        if messages == 0 {
            return "m-0".to_owned();
        }
        let below = self.bounds.iter().filter(|bound| **bound <= messages).count();
        format!("m-{}", 5 + below - self.bounds.len())
    }

    /// Legend entries: class and range text.
    fn legend(&self) -> Vec<(String, String)> {
        let count = self.bounds.len();
        self.bounds
            .iter()
            .enumerate()
            .map(|(index, bound)| {
                let text = match self.bounds.get(index + 1) {
                    None if count == 1 => "1 or more".to_owned(),
                    None => format!("≥ {}", compact(*bound)),
                    Some(next) if index == 0 => format!("< {}", compact(*next)),
                    Some(next) => format!("{} – {}", compact(*bound), compact(*next)),
                };
                (format!("m-{}", 5 + index + 1 - count), text)
            })
            .collect()
    }
}

/// A world map of `figures`, with `title` as its heading and accessible name. Figures for the
/// same code are added up; codes without a place on the map are counted under it.
pub fn world_svg(figures: &[CountryFigure], title: &str) -> String {
    let world = world();
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    for figure in figures {
        let entry = totals.entry(figure.code.trim().to_ascii_uppercase()).or_default();
        entry.messages = entry.messages.saturating_add(figure.messages);
        entry.failing = entry.failing.saturating_add(figure.failing);
    }
    let placed = |code: &str| world.countries.iter().any(|country| country.code == code);
    let unplaced: Vec<(&String, &Totals)> =
        totals.iter().filter(|(code, totals)| totals.messages > 0 && !placed(code)).collect();
    let largest = totals.values().map(|totals| totals.messages).max().unwrap_or(0);
    let buckets = Buckets::new(largest);

    let mut ranked: Vec<(&Country, Totals)> = world
        .countries
        .iter()
        .filter_map(|country| totals.get(country.code).map(|totals| (country, *totals)))
        .filter(|(_, totals)| totals.messages > 0)
        .collect();
    ranked.sort_by(|a, b| b.1.messages.cmp(&a.1.messages).then(a.0.code.cmp(b.0.code)));
    let mut desc = format!("Messages by sending country: {} countries on the map with messages", ranked.len());
    for (country, totals) in ranked.iter().take(5) {
        let _ = write!(desc, "; {}", totals.describe(country.name));
    }
    desc.push('.');

    let height = TITLE_BAND + world.height + LEGEND_BAND;
    let mut svg = Svg::open("dp-map", world.width, height, title, &desc);
    svg.title(title);
    svg.out.push_str(concat!(
        "<defs>",
        "<pattern id=\"dp-hatch-some\" width=\"12\" height=\"12\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">",
        "<rect class=\"hatch-casing\" width=\"2.6\" height=\"12\"/><rect class=\"hatch-line\" x=\"0.5\" width=\"1.6\" height=\"12\"/></pattern>",
        "<pattern id=\"dp-hatch-many\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" patternTransform=\"rotate(45)\">",
        "<rect class=\"hatch-casing\" width=\"2.6\" height=\"6\"/><rect class=\"hatch-line\" x=\"0.5\" width=\"1.6\" height=\"6\"/></pattern>",
        "</defs>"
    ));
    let _ = write!(svg.out, "<g transform=\"translate(0 {})\">", num(TITLE_BAND));
    let mut dots = String::new();
    for country in &world.countries {
        let figures = totals.get(country.code).copied().unwrap_or_default();
        let class = buckets.class(figures.messages);
        let caption = escape(&figures.describe(country.name));
        match country.outline {
            Outline::Shape(path) => {
                let _ = write!(
                    svg.out,
                    "<path class=\"country {class}\" data-cc=\"{}\" d=\"{path}\"><title>{caption}</title></path>",
                    country.code
                );
                if let Some(hatch) = figures.hatch() {
                    let _ = write!(
                        svg.out,
                        "<path class=\"country-hatch\" fill=\"url(#{hatch})\" pointer-events=\"none\" aria-hidden=\"true\" d=\"{path}\"/>"
                    );
                }
            }
            // Drawn after all shapes so they stay on top; only with data, or they would clutter.
            Outline::Dot(x, y) if figures.messages > 0 => {
                let fail = if figures.hatch().is_some() { " dot-fail" } else { "" };
                let _ = write!(
                    dots,
                    "<circle class=\"dot {class}{fail}\" data-cc=\"{}\" cx=\"{}\" cy=\"{}\" r=\"4\"><title>{caption}</title></circle>",
                    country.code,
                    num(x),
                    num(y)
                );
            }
            Outline::Dot(..) => {}
        }
    }
    svg.out.push_str(&dots);
    svg.out.push_str("</g>");
    legend(&mut svg, &buckets, &unplaced, TITLE_BAND + world.height + 24.0);
    svg.close()
}

fn legend(svg: &mut Svg, buckets: &Buckets, unplaced: &[(&String, &Totals)], top: f64) {
    let mut x = 12.0;
    let swatch = |svg: &mut Svg, x: f64, top: f64, class: &str, fill: Option<&str>, text: &str| -> f64 {
        let _ = write!(
            svg.out,
            "<rect class=\"{class}\" x=\"{}\" y=\"{}\" width=\"16\" height=\"16\"/>",
            num(x),
            num(top - 13.0)
        );
        if let Some(pattern) = fill {
            let _ = write!(
                svg.out,
                "<rect fill=\"url(#{pattern})\" x=\"{}\" y=\"{}\" width=\"16\" height=\"16\"/>",
                num(x),
                num(top - 13.0)
            );
        }
        let _ = write!(svg.out, "<text x=\"{}\" y=\"{}\">{}</text>", num(x + 21.0), num(top), escape(text));
        x + 21.0 + text.chars().count() as f64 * CHAR_WIDTH + 18.0
    };
    let _ = write!(svg.out, "<text class=\"muted\" x=\"{}\" y=\"{}\">Messages:</text>", num(x), num(top));
    x += 92.0;
    x = swatch(svg, x, top, "m-0", None, "none");
    for (class, text) in buckets.legend() {
        x = swatch(svg, x, top, &class, None, &text);
    }
    let second = top + 28.0;
    let mut x2 = 12.0;
    let _ = write!(svg.out, "<text class=\"muted\" x=\"{}\" y=\"{}\">Failing:</text>", num(x2), num(second));
    x2 += 92.0;
    for (pattern, text) in [("dp-hatch-some", "1 – 10 %"), ("dp-hatch-many", "10 % or more")] {
        x2 = swatch(svg, x2, second, "m-0", Some(pattern), text);
    }
    let _ = write!(
        svg.out,
        "<text class=\"muted\" x=\"{}\" y=\"{}\">(small countries: dots, ringed when failing)</text>",
        num(x2),
        num(second)
    );
    if !unplaced.is_empty() {
        let messages: u64 = unplaced.iter().map(|(_, totals)| totals.messages).sum();
        let codes: Vec<&str> = unplaced.iter().take(8).map(|(code, _)| code.as_str()).collect();
        let more = if unplaced.len() > 8 { ", …" } else { "" };
        let _ = write!(
            svg.out,
            "<text class=\"muted\" x=\"12\" y=\"{}\">Not on the map: {} messages ({}{more})</text>",
            num(second + 28.0),
            thousands(messages.into()),
            escape(&codes.join(", "))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_file_parses_whole() {
        let world = world();
        assert_eq!(world.bad_lines, 0);
        assert_eq!(world.width, 960.0);
        assert!(world.height > 400.0 && world.height < 480.0, "{}", world.height);
        let shapes = world.countries.iter().filter(|country| matches!(country.outline, Outline::Shape(_))).count();
        assert!(shapes >= 170, "{shapes} shapes");
        for code in ["DE", "FR", "NO", "US", "RU", "XK", "SG", "HK"] {
            assert!(world.countries.iter().any(|country| country.code == code), "{code} is on the map");
        }
        assert_eq!(parse("shape\tDE\tGermany\tnot a path\nsize\tx\t1\n").bad_lines, 2);
    }

    #[test]
    fn buckets_are_decades_below_the_largest() {
        let buckets = Buckets::new(123_456);
        assert_eq!(buckets.bounds, vec![1, 10, 100, 1000, 10_000]);
        assert_eq!(buckets.class(0), "m-0");
        assert_eq!(buckets.class(5), "m-1");
        assert_eq!(buckets.class(100), "m-3");
        assert_eq!(buckets.class(123_456), "m-5");
        let small = Buckets::new(40);
        assert_eq!(small.bounds, vec![1, 2]);
        assert_eq!(small.class(40), "m-5");
        assert_eq!(small.class(1), "m-4");
        assert_eq!(small.legend(), vec![("m-4".to_owned(), "< 2".to_owned()), ("m-5".to_owned(), "≥ 2".to_owned())]);
        assert_eq!(Buckets::new(1).legend(), vec![("m-5".to_owned(), "1 or more".to_owned())]);
    }
}
