//! The report's SVG charts and world map, read back through a small XML parser: well-formed,
//! escaped, drawn to scale, and readable when empty. Also writes `target/chart-preview.html`,
//! a page with every chart, to look at in a browser.

use dmarcpipe_render::report::chart::{Bar, Series, horizontal_bars, share_meter, stacked_daily};
use dmarcpipe_render::report::map::{CountryFigure, world_svg};

/// An XML element as parsed: name, attributes in order, children, and its own text.
#[derive(Debug)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<Element>,
    text: String,
}

impl Element {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }

    fn number(&self, name: &str) -> f64 {
        let value = self.attribute(name).unwrap_or_else(|| panic!("<{}> has no {name}", self.name));
        value.parse().unwrap_or_else(|_| panic!("{name}={value:?} is not a number"))
    }

    fn has_class(&self, class: &str) -> bool {
        self.attribute("class").is_some_and(|classes| classes.split(' ').any(|c| c == class))
    }

    /// This element and all below it, depth first.
    fn all(&self) -> Vec<&Element> {
        let mut found = vec![self];
        for child in &self.children {
            found.extend(child.all());
        }
        found
    }

    fn named(&self, name: &str) -> Vec<&Element> {
        self.all().into_iter().filter(|element| element.name == name).collect()
    }

    /// All text below this element, in order.
    fn full_text(&self) -> String {
        let mut text = self.text.clone();
        for child in &self.children {
            text.push_str(&child.full_text());
        }
        text
    }

    fn title(&self) -> Option<String> {
        self.children.iter().find(|child| child.name == "title").map(Element::full_text)
    }
}

/// A strict parser for the XML subset we write: elements, attributes, text, the five named
/// entities and character references. Anything else (or anything malformed) is an error.
fn parse_xml(input: &str) -> Result<Element, String> {
    let mut parser = XmlParser { rest: input.trim_start() };
    let root = parser.element()?;
    if !parser.rest.trim().is_empty() {
        return Err(format!("content after the root element: {:.40}", parser.rest));
    }
    Ok(root)
}

struct XmlParser<'a> {
    rest: &'a str,
}

impl XmlParser<'_> {
    fn element(&mut self) -> Result<Element, String> {
        self.expect("<")?;
        let name = self.name()?;
        let mut element = Element { name, attributes: Vec::new(), children: Vec::new(), text: String::new() };
        loop {
            self.rest = self.rest.trim_start();
            if self.rest.starts_with("/>") {
                self.rest = &self.rest[2..];
                return Ok(element);
            }
            if self.rest.starts_with('>') {
                self.rest = &self.rest[1..];
                break;
            }
            let key = self.name()?;
            self.expect("=")?;
            let quote = self.rest.chars().next().ok_or("end of input in an attribute")?;
            if quote != '"' && quote != '\'' {
                return Err(format!("unquoted attribute {key}"));
            }
            let end = self.rest[1..].find(quote).ok_or_else(|| format!("unterminated attribute {key}"))?;
            let raw = &self.rest[1..1 + end];
            if raw.contains('<') {
                return Err(format!("'<' in attribute {key}"));
            }
            if element.attributes.iter().any(|(existing, _)| *existing == key) {
                return Err(format!("attribute {key} twice on <{}>", element.name));
            }
            element.attributes.push((key, decode(raw)?));
            self.rest = &self.rest[end + 2..];
        }
        loop {
            let next = self.rest.find('<').ok_or_else(|| format!("<{}> is never closed", element.name))?;
            element.text.push_str(&decode(&self.rest[..next])?);
            self.rest = &self.rest[next..];
            if let Some(after) = self.rest.strip_prefix("</") {
                self.rest = after;
                let name = self.name()?;
                if name != element.name {
                    return Err(format!("<{}> closed by </{name}>", element.name));
                }
                self.rest = self.rest.trim_start();
                self.expect(">")?;
                return Ok(element);
            }
            element.children.push(self.element()?);
        }
    }

    fn name(&mut self) -> Result<String, String> {
        let end = self
            .rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | ':' | '.')))
            .unwrap_or(self.rest.len());
        if end == 0 {
            return Err(format!("expected a name at {:.40}", self.rest));
        }
        let name = self.rest[..end].to_owned();
        self.rest = &self.rest[end..];
        Ok(name)
    }

    fn expect(&mut self, token: &str) -> Result<(), String> {
        self.rest = self.rest.strip_prefix(token).ok_or_else(|| format!("expected {token:?} at {:.40}", self.rest))?;
        Ok(())
    }
}

fn decode(raw: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let end = rest[at..].find(';').ok_or("'&' without ';'")?;
        let entity = &rest[at + 1..at + end];
        let decoded = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => entity
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("unknown entity &{entity};"))?,
        };
        out.push(decoded);
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn svg(text: &str) -> Element {
    let root = parse_xml(text).unwrap_or_else(|error| panic!("not well-formed XML: {error}\n{text:.2000}"));
    assert_eq!(root.name, "svg");
    assert_eq!(root.attribute("role"), Some("img"));
    assert_eq!(root.attribute("width"), Some("100%"));
    assert!(root.attribute("viewBox").is_some());
    assert_eq!(root.children.first().map(|child| child.name.as_str()), Some("title"));
    assert_eq!(root.children.get(1).map(|child| child.name.as_str()), Some("desc"));
    root
}

fn days(count: usize) -> Vec<String> {
    (0..count).map(|day| format!("2026-11-{:02}", day + 1)).collect()
}

fn series(label: &str, class: &str, values: &[u64]) -> Series {
    Series { label: label.to_owned(), css_class: class.to_owned(), values: values.to_vec() }
}

fn rects_of<'a>(root: &'a Element, class: &str) -> Vec<&'a Element> {
    // Legend swatches are 12 or 14 units square and carry no <title>; bars always have one.
    root.named("rect").into_iter().filter(|rect| rect.has_class(class) && rect.title().is_some()).collect()
}

#[test]
fn the_parser_rejects_what_is_not_well_formed() {
    for bad in ["<a><b></a></b>", "<a x=1/>", "<a>&nope;</a>", "<a>x", "<a/><b/>", "<a x=\"<\"/>", "<a x='1' x='2'/>"] {
        assert!(parse_xml(bad).is_err(), "{bad} was accepted");
    }
    let good = parse_xml("<a k='v &amp; w'><b>1 &lt; 2&#33;</b></a>").expect("well-formed");
    assert_eq!(good.attribute("k"), Some("v & w"));
    assert_eq!(good.full_text(), "1 < 2!");
}

#[test]
fn stacked_bars_are_drawn_to_scale() {
    let layers =
        [series("Compliant", "c-compliant", &[100, 0, 300, 40]), series("Unknown", "c-unknown", &[50, 200, 0, 10])];
    let root = svg(&stacked_daily(&days(4), &layers, "Messages by class"));
    let compliant = rects_of(&root, "c-compliant");
    let unknown = rects_of(&root, "c-unknown");
    assert_eq!(compliant.len(), 3, "zero segments are not drawn");
    assert_eq!(unknown.len(), 3);
    let per_message = compliant[0].number("height") / 100.0;
    for (rect, value) in compliant.iter().zip([100.0, 300.0, 40.0]).chain(unknown.iter().zip([50.0, 200.0, 10.0])) {
        let height = rect.number("height");
        assert!((height - value * per_message).abs() < 0.02, "height {height} for {value}");
    }
    // Segments of one day stack without gaps: the unknown segment sits on the compliant one.
    assert!((unknown[0].number("y") + unknown[0].number("height") - compliant[0].number("y")).abs() < 0.02);
    // The tallest bar (300) fits under the top tick (300 with steps of 100... or the next round value).
    let tallest = compliant[1].number("height");
    let ticks: Vec<String> = root.named("text").iter().map(|text| text.full_text()).collect();
    assert!(ticks.contains(&"0".to_owned()) && ticks.contains(&"300".to_owned()), "{ticks:?}");
    assert!(tallest > 0.0);
    assert_eq!(compliant[0].title().as_deref(), Some("2026-11-01: Compliant 100"));
    assert!(ticks.iter().any(|text| text.starts_with("Nov 1")), "{ticks:?}");
    assert!(ticks.contains(&"Compliant (440)".to_owned()), "legend with totals: {ticks:?}");
    let desc = root.named("desc")[0].full_text();
    assert_eq!(desc, "Messages per day, 2026-11-01 to 2026-11-04: 700 in all; Compliant 440; Unknown 260.");
}

#[test]
fn a_short_series_counts_missing_days_as_zero() {
    let layers = [series("Pass", "c-pass", &[5]), series("Fail", "c-fail", &[1, 2, 3, 4])];
    let root = svg(&stacked_daily(&days(2), &layers, "Short"));
    assert_eq!(rects_of(&root, "c-pass").len(), 1);
    assert_eq!(rects_of(&root, "c-fail").len(), 2, "values beyond the days are not drawn");
    assert!(root.named("desc")[0].full_text().contains("Fail 3"));
}

#[test]
fn empty_periods_say_so_and_one_day_is_one_centred_bar() {
    for (dates, layers) in [
        (Vec::new(), vec![series("Compliant", "c-compliant", &[])]),
        (days(3), vec![series("Compliant", "c-compliant", &[0, 0, 0])]),
        (days(3), Vec::new()),
    ] {
        let root = svg(&stacked_daily(&dates, &layers, "Empty"));
        assert!(root.full_text().contains("No data for this period"));
        assert!(root.named("rect").is_empty());
    }
    let root = svg(&stacked_daily(&days(1), &[series("Compliant", "c-compliant", &[42])], "One day"));
    let bars = rects_of(&root, "c-compliant");
    assert_eq!(bars.len(), 1);
    let (x, width) = (bars[0].number("x"), bars[0].number("width"));
    assert!(width <= 48.0 && width > 10.0, "a sensible width: {width}");
    let centre = x + width / 2.0;
    assert!((centre - (56.0 + 708.0) / 2.0).abs() < 1.0, "centred: {centre}");
    assert!(root.full_text().contains("Nov 1"));
}

#[test]
fn labels_and_classes_are_escaped() {
    let evil = "<script>alert('x')</script> & \"co\"";
    let layers = [series(evil, "c-pass\" onclick=\"x", &[1, 2])];
    let charts = [
        stacked_daily(&[evil.to_owned(), "2026-11-02".to_owned()], &layers, evil),
        horizontal_bars(&[Bar { label: evil.to_owned(), total: 10, failing: 3 }], evil),
        share_meter(0.5, evil),
        world_svg(&[CountryFigure { code: "<b>".to_owned(), messages: 3, failing: 0 }], evil),
    ];
    for chart in charts {
        assert!(!chart.contains("<script"), "raw markup in {chart:.300}");
        let root = svg(&chart);
        assert!(root.all().iter().all(|element| element.name != "script"));
        assert!(root.all().iter().all(|element| element.attribute("onclick").is_none()));
        assert!(root.title().is_some_and(|title| title.contains(evil) || title == evil));
    }
}

#[test]
fn horizontal_bars_split_the_failing_part_to_scale() {
    let bars = [
        Bar { label: "mail.example.com".to_owned(), total: 1000, failing: 250 },
        Bar { label: "sendgrid.net".to_owned(), total: 400, failing: 0 },
        Bar { label: "unknown".to_owned(), total: 100, failing: 500 },
    ];
    let root = svg(&horizontal_bars(&bars, "Top sources"));
    let pass: Vec<f64> = root
        .named("rect")
        .iter()
        .filter(|r| r.has_class("c-pass") && r.number("width") != 12.0)
        .map(|r| r.number("width"))
        .collect();
    let fail: Vec<f64> = root
        .named("rect")
        .iter()
        .filter(|r| r.has_class("c-fail") && r.number("width") != 12.0)
        .map(|r| r.number("width"))
        .collect();
    assert_eq!(pass.len(), 2, "the all-failing row has no passing part: {pass:?}");
    assert_eq!(fail.len(), 2, "the row without failures has no failing part: {fail:?}");
    let per_message = pass[0] / 750.0;
    assert!((fail[0] - 250.0 * per_message).abs() < 0.02);
    assert!((pass[1] - 400.0 * per_message).abs() < 0.02);
    assert!((fail[1] - 100.0 * per_message).abs() < 0.02, "failing is capped at the total");
    let titles: Vec<String> = root.named("g").iter().filter_map(|g| g.title()).collect();
    assert_eq!(titles[0], "mail.example.com: 1,000 messages, 250 failing (25.0 %)");
    assert_eq!(titles[2], "unknown: 100 messages, 100 failing (100.0 %)");
    let long = "a-very-long-host-name.of-some-sending-service.example.com";
    let root = svg(&horizontal_bars(&[Bar { label: long.to_owned(), total: 5, failing: 1 }], "Long"));
    assert!(root.full_text().contains("a-very-long-host-nam…"), "long labels are cut");
    assert_eq!(root.named("g")[0].title().as_deref(), Some(format!("{long}: 5 messages, 1 failing (20.0 %)").as_str()));
    let empty = svg(&horizontal_bars(&[], "Top sources"));
    assert!(empty.full_text().contains("No data for this period"));
}

#[test]
fn the_share_meter_shows_the_percentage() {
    let root = svg(&share_meter(0.973, "DMARC compliance"));
    let text = root.full_text();
    assert!(text.contains("97.3 %") && text.contains("DMARC compliance"), "{text}");
    let arc = root.named("path").into_iter().find(|path| path.has_class("c-pass")).expect("an arc");
    // The arc ends at 97.3 % of a turn from 12 o'clock: just left of the top.
    let d = arc.attribute("d").unwrap_or_default();
    let end: Vec<f64> = d
        .split('A')
        .nth(1)
        .unwrap_or_default()
        .split(['L', ' '])
        .skip(5)
        .take(2)
        .map(|n| n.parse().unwrap_or(f64::NAN))
        .collect();
    let angle = 0.973 * std::f64::consts::TAU;
    assert!(
        (end[0] - (110.0 + 70.0 * angle.sin())).abs() < 0.01 && (end[1] - (86.0 - 70.0 * angle.cos())).abs() < 0.01,
        "{d}"
    );
    assert!(svg(&share_meter(1.0, "All")).full_text().contains("100.0 %"));
    assert!(svg(&share_meter(1.5, "Over")).full_text().contains("100.0 %"), "clamped");
    let none = svg(&share_meter(0.0, "None"));
    assert!(none.full_text().contains("0.0 %"));
    assert!(none.named("path").iter().all(|path| !path.has_class("c-pass")));
    assert!(svg(&share_meter(f64::NAN, "Nothing")).full_text().contains("no data"));
}

fn figure(code: &str, messages: u64, failing: u64) -> CountryFigure {
    CountryFigure { code: code.to_owned(), messages, failing }
}

#[test]
fn the_map_shades_countries_and_titles_their_figures() {
    let figures = [
        figure("DE", 12_400, 384),
        figure("US", 123_456, 20_000),
        figure("fr", 50, 0),
        figure("JP", 5_000, 0),
        figure("SG", 700, 0),
        figure("ZZ", 9, 9),
        figure("EU", 1, 0),
    ];
    let root = svg(&world_svg(&figures, "Where mail comes from"));
    let countries: Vec<&Element> = root.named("path").into_iter().filter(|path| path.has_class("country")).collect();
    assert!(countries.len() >= 170, "{} countries", countries.len());
    assert!(
        countries.iter().all(|path| path.title().is_some() && path.attribute("d").is_some_and(|d| d.starts_with('M')))
    );
    let by_code = |code: &str| {
        root.all()
            .into_iter()
            .find(|element| element.attribute("data-cc") == Some(code))
            .unwrap_or_else(|| panic!("{code} drawn"))
    };
    let germany = by_code("DE");
    assert_eq!(germany.title().as_deref(), Some("Germany: 12,400 messages, 3.1 % failing"));
    assert!(germany.has_class("m-5"), "within a decade of the largest: {:?}", germany.attribute("class"));
    assert!(by_code("US").has_class("m-5"));
    assert!(by_code("JP").has_class("m-4"));
    assert!(by_code("FR").has_class("m-2"), "lower-case codes count: {:?}", by_code("FR").attribute("class"));
    assert_eq!(by_code("FR").title().as_deref(), Some("France: 50 messages, 0.0 % failing"));
    let norway = by_code("NO");
    assert!(norway.has_class("m-0"));
    assert_eq!(norway.title().as_deref(), Some("Norway: no messages"));
    let singapore = by_code("SG");
    assert_eq!(singapore.name, "circle", "too small for a shape: a dot");
    assert!(singapore.has_class("m-3"));
    assert!(root.all().iter().all(|element| element.attribute("data-cc") != Some("MT")), "dots only with data");
    let hatches: Vec<&str> = root.named("path").iter().filter_map(|path| path.attribute("fill")).collect();
    assert_eq!(hatches, vec!["url(#dp-hatch-some)", "url(#dp-hatch-many)"], "DE 3.1 %, US 16 %");
    assert!(root.all().iter().all(|element| element.attribute("data-cc") != Some("ZZ")));
    let text = root.full_text();
    assert!(text.contains("Not on the map: 10 messages (EU, ZZ)"), "{text:.400}");
    assert!(text.contains("≥ 10k") && text.contains("< 10"), "volume legend");
    assert!(root.named("desc")[0].full_text().starts_with("Messages by sending country: 5 countries on the map with messages; United States: 123,456 messages, 16.2 % failing"));
}

#[test]
fn an_empty_map_is_all_neutral() {
    let root = svg(&world_svg(&[], "Nothing yet"));
    let countries: Vec<&Element> = root.named("path").into_iter().filter(|path| path.has_class("country")).collect();
    assert!(countries.len() >= 170);
    assert!(countries.iter().all(|path| path.has_class("m-0")));
    assert!(root.named("circle").is_empty());
}

#[test]
fn writes_a_preview_page() {
    let dates = days(30);
    let wave =
        |base: u64, spread: u64| -> Vec<u64> { (0..30u64).map(|day| base + (day * 7919 + base) % spread).collect() };
    let layers = [
        series("Compliant", "c-compliant", &wave(24_000, 9_000)),
        series("Forwarded", "c-forwarded", &wave(1_500, 900)),
        series("Misconfigured", "c-misconfigured", &wave(800, 1_200)),
        series("Unknown / threat", "c-unknown", &wave(300, 700)),
    ];
    let bars: Vec<Bar> = [
        ("google.com", 412_000, 1_200),
        ("mail.protection.outlook.com", 130_500, 9_800),
        ("sendgrid.net", 64_000, 31_000),
        ("amazonses.com", 22_800, 0),
        ("unknown host 203.0.113.7 <script>", 4_100, 4_100),
    ]
    .into_iter()
    .map(|(label, total, failing)| Bar { label: label.to_owned(), total, failing })
    .collect();
    let countries = [
        figure("US", 412_000, 9_000),
        figure("DE", 120_400, 3_800),
        figure("FR", 33_000, 100),
        figure("BR", 8_200, 2_900),
        figure("IN", 2_100, 400),
        figure("RU", 900, 880),
        figure("AU", 120, 0),
        figure("SG", 4_000, 10),
        figure("HK", 300, 200),
        figure("JP", 15_000, 1_000),
        figure("ZA", 40, 1),
        figure("EU", 12, 0),
    ];
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"color-scheme\" content=\"light dark\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>Chart preview</title>\
         <style>body{{font-family:system-ui,sans-serif;margin:1rem auto;max-width:1000px;padding:0 1rem;background:#fff;color:#1b1b1b}}\
         @media (prefers-color-scheme:dark){{body{{background:#1b1b1b;color:#e8e8e8}}}}\
         .meters{{display:flex;gap:1rem;flex-wrap:wrap}}.meters svg{{max-width:180px}}section{{margin:1.5rem 0}}</style></head><body>\
         <section class=\"meters\">{}{}{}{}</section><section>{}</section><section>{}</section><section>{}</section>\
         <section>{}</section><section>{}</section><section>{}</section></body></html>",
        share_meter(0.973, "DMARC compliance"),
        share_meter(0.999_99, "Aligned SPF"),
        share_meter(0.412, "Aligned DKIM"),
        share_meter(f64::NAN, "Failure reports"),
        stacked_daily(&dates, &layers, "Messages per day by class"),
        stacked_daily(
            &dates[..1],
            &[series("Compliant", "c-compliant", &[1234]), series("Unknown", "c-unknown", &[87])],
            "One day"
        ),
        stacked_daily(&[], &layers, "An empty period"),
        horizontal_bars(&bars, "Top sending sources"),
        world_svg(&countries, "Messages by country"),
        horizontal_bars(&[], "No sources"),
    );
    svg(&share_meter(0.5, "check"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    std::fs::create_dir_all(&target).expect("target directory");
    std::fs::write(target.join("chart-preview.html"), page).expect("preview written");
}
