//! The digest mail (`dmarcpipe digest`): the period's rollups as an HTML body that mail clients
//! render, and the same content as text/plain.
//!
//! Input: a [`Digest`], numbers only (sums from the rollups for the period and the period
//! before it). Output: a subject line, an HTML body and a text body ([`Rendered`]).
//!
//! The HTML is made for mail clients that strip `<style>`, CSS classes and SVG (Gmail, Outlook
//! on Windows): tables with inline styles, explicit background colours, numbers as text and
//! bars drawn as table cell widths; no `<style>`, no `<svg>`, no images, no scripts. The
//! template (`templates/digest.html`) is rendered by minijinja with HTML escaping on, so a
//! reporter's name or a domain holding markup shows as text. The text body comes from
//! `templates/digest.txt` (not escaped: it is plain text).

use std::fmt::Write as _;

use minijinja::Environment;
use minijinja::value::Serde;
use serde::Serialize;

/// Compliance from which a domain may move to `p=quarantine` (research: dmarcbusta, hunto).
pub const QUARANTINE_COMPLIANCE: f64 = 0.95;
/// Compliance from which a domain may move to `p=reject`.
pub const REJECT_COMPLIANCE: f64 = 0.99;
/// Messages a domain needs in the period before a verdict on its readiness means anything.
pub const READINESS_MIN_MESSAGES: i128 = 1_000;

/// Sums over a period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub messages: i128,
    /// Messages that passed DMARC (aligned DKIM or aligned SPF).
    pub dmarc_pass: i128,
    pub dkim_aligned: i128,
    pub spf_aligned: i128,
    /// Messages quarantined or rejected by the receivers.
    pub enforced: i128,
    pub reports: i128,
    pub reporters: i128,
    pub domains: i128,
    pub failure_reports: i128,
}

/// The message counts of one row: a DMARC result, or a source (with its policy domain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// The result (`pass`, `fail`, `unknown`) or the source address (`None`: records without
    /// an address).
    pub key: Option<String>,
    /// The policy domain, for sources listed per domain.
    pub domain: Option<String>,
    pub messages: i128,
    pub dmarc_pass: i128,
    pub dmarc_fail: i128,
    pub dkim_aligned: i128,
    pub spf_aligned: i128,
    pub disposition_none: i128,
    pub disposition_quarantine: i128,
    pub disposition_reject: i128,
}

/// One policy domain over the period, for the readiness verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DomainStanding {
    pub domain: String,
    pub messages: i128,
    pub dmarc_pass: i128,
    /// The `p=` of the latest report of the period.
    pub policy: Option<String>,
    /// Days of the period with reports.
    pub days: i64,
}

/// Everything the digest shows.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    /// `example.org`, or `all domains`.
    pub scope: String,
    /// `day`, `week` or `month`.
    pub period: String,
    /// First and last day of the period (UTC, `YYYY-MM-DD`).
    pub first_day: String,
    pub last_day: String,
    /// First and last day of the period before, for the deltas.
    pub previous_first_day: String,
    pub previous_last_day: String,
    pub current: Totals,
    pub previous: Totals,
    /// Per DMARC result, most messages first.
    pub results: Vec<Counts>,
    /// The sources that sent the most messages.
    pub top_sources: Vec<Counts>,
    /// The sources with the most failing messages, per policy domain.
    pub failing_sources: Vec<Counts>,
    pub domains: Vec<DomainStanding>,
    /// What is attached, and what could not be (said in the mail).
    pub attachments: Vec<String>,
    pub notes: Vec<String>,
}

/// The mail's subject and bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

const HTML_TEMPLATE: &str = include_str!("../templates/digest.html");
const TEXT_TEMPLATE: &str = include_str!("../templates/digest.txt");

/// Renders the digest. Fails only on a template bug.
pub fn render(digest: &Digest) -> Result<Rendered, minijinja::Error> {
    let mut env = Environment::new();
    // Autoescape follows the name: `.html` escapes, `.txt` does not.
    env.add_template("digest.html", HTML_TEMPLATE)?;
    env.add_template("digest.txt", TEXT_TEMPLATE)?;
    let view = View::of(digest);
    let html = env.get_template("digest.html")?.render(Serde(Context { d: &view }))?;
    let text = env.get_template("digest.txt")?.render(Serde(Context { d: &view }))?;
    Ok(Rendered { subject: view.subject.clone(), html, text })
}

/// The templates' root: the view is `d`.
#[derive(Debug, Serialize)]
struct Context<'a> {
    d: &'a View,
}

/// What the templates see: every number already formatted.
#[derive(Debug, Serialize)]
struct View {
    subject: String,
    scope: String,
    period: String,
    first_day: String,
    last_day: String,
    previous_first_day: String,
    previous_last_day: String,
    has_data: bool,
    figures: Vec<FigureView>,
    results: Vec<RowView>,
    top_sources: Vec<RowView>,
    failing_sources: Vec<RowView>,
    fixes: Vec<String>,
    attachments: Vec<String>,
    notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct FigureView {
    /// Stable name (`messages`, `compliance`, ...), also in the HTML as `data-figure`.
    key: &'static str,
    label: &'static str,
    value: String,
    /// `+12 (+4.5%)`, `-1.2 pt`, or `no data before`.
    delta: String,
    /// `up`, `down` or `flat`.
    direction: &'static str,
    /// The colour of the delta: green when it moved the good way, red the bad way, grey else.
    colour: &'static str,
}

#[derive(Debug, Serialize)]
struct RowView {
    key: String,
    domain: String,
    messages: String,
    share: String,
    /// Width of the bar, in percent of the cell (0-100).
    bar: u32,
    pass: String,
    fail: String,
    compliance: String,
    dkim: String,
    spf: String,
    quarantine: String,
    reject: String,
}

const GREEN: &str = "#1a7f37";
const RED: &str = "#b42318";
const GREY: &str = "#57606a";

/// Which way a figure should move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Up,
    Neither,
}

impl View {
    fn of(digest: &Digest) -> View {
        let (now, before) = (&digest.current, &digest.previous);
        let figures = headline_figures(now, before);
        let rows = |rows: &[Counts], whole: i128| rows.iter().map(|row| RowView::of(row, whole)).collect();
        let when = format!("{} {}", digest.period, span(&digest.first_day, &digest.last_day));
        let subject = match ratio(now.dmarc_pass, now.messages) {
            Some(compliance) => format!(
                "DMARC digest for {}, {when}: {} messages, {} DMARC compliant",
                digest.scope,
                thousands(now.messages),
                percent(compliance)
            ),
            None => format!("DMARC digest for {}, {when}: no aggregate reports", digest.scope),
        };
        View {
            subject,
            scope: digest.scope.clone(),
            period: digest.period.clone(),
            first_day: digest.first_day.clone(),
            last_day: digest.last_day.clone(),
            previous_first_day: digest.previous_first_day.clone(),
            previous_last_day: digest.previous_last_day.clone(),
            has_data: now.messages > 0,
            figures,
            results: rows(&digest.results, now.messages),
            top_sources: rows(&digest.top_sources, now.messages),
            failing_sources: digest
                .failing_sources
                .iter()
                .filter(|row| row.dmarc_fail > 0)
                .map(|row| RowView::of(row, now.messages))
                .collect(),
            fixes: fixes(digest),
            attachments: digest.attachments.clone(),
            notes: digest.notes.clone(),
        }
    }
}

/// The headline figures of a period against the period before (the digest and the visual
/// report show the same ones).
pub(crate) fn headline_figures(now: &Totals, before: &Totals) -> Vec<FigureView> {
    let count = |key, label, value: fn(&Totals) -> i128| FigureView::count(key, label, value(now), value(before));
    let share = |key, label, part: fn(&Totals) -> i128| {
        FigureView::share(key, label, ratio(part(now), now.messages), ratio(part(before), before.messages))
    };
    vec![
        count("messages", "Messages", |t| t.messages),
        share("compliance", "DMARC compliance", |t| t.dmarc_pass),
        share("dkim_aligned", "Aligned DKIM", |t| t.dkim_aligned),
        share("spf_aligned", "Aligned SPF", |t| t.spf_aligned),
        share("enforced", "Quarantined or rejected", |t| t.enforced).neutral(),
        count("reporters", "Reporters", |t| t.reporters),
        count("domains", "Domains", |t| t.domains),
        count("reports", "Reports", |t| t.reports),
        count("failure_reports", "Failure reports", |t| t.failure_reports),
    ]
}

/// `2026-11-30`, or `2026-11-24 to 2026-11-30`.
pub(crate) fn span(first: &str, last: &str) -> String {
    if first == last { first.to_owned() } else { format!("{first} to {last}") }
}

impl FigureView {
    fn count(key: &'static str, label: &'static str, now: i128, before: i128) -> FigureView {
        let change = now - before;
        let delta = match (before, change) {
            (_, 0) => "no change".to_owned(),
            (0, _) => format!("{} (none before)", signed(change)),
            _ => format!("{} ({:+.1}%)", signed(change), change as f64 * 100.0 / before as f64),
        };
        FigureView { key, label, value: thousands(now), delta, direction: direction(change.signum()), colour: GREY }
    }

    /// A share of the messages; the delta in percentage points. Higher is better.
    fn share(key: &'static str, label: &'static str, now: Option<f64>, before: Option<f64>) -> FigureView {
        let value = now.map_or_else(|| "no data".to_owned(), percent);
        let (delta, sign) = match (now, before) {
            (Some(now), Some(before)) => {
                let points = (now - before) * 100.0;
                // Changes that round to 0.0 points are no change.
                if (points * 10.0).round() == 0.0 {
                    ("no change".to_owned(), 0)
                } else {
                    (format!("{points:+.1} pt"), if points > 0.0 { 1 } else { -1 })
                }
            }
            (_, None) => ("no data before".to_owned(), 0),
            (None, Some(_)) => ("no data now".to_owned(), 0),
        };
        let colour = colour(sign, Better::Up);
        FigureView { key, label, value, delta, direction: direction(sign), colour }
    }

    /// A figure that is neither good nor bad when it moves.
    fn neutral(self) -> FigureView {
        FigureView { colour: colour(0, Better::Neither), ..self }
    }
}

fn direction(sign: impl Into<i128>) -> &'static str {
    match sign.into() {
        1.. => "up",
        0 => "flat",
        _ => "down",
    }
}

fn colour(sign: i32, better: Better) -> &'static str {
    match (sign, better) {
        (0, _) | (_, Better::Neither) => GREY,
        (1.., Better::Up) => GREEN,
        (_, Better::Up) => RED,
    }
}

impl RowView {
    fn of(row: &Counts, whole: i128) -> RowView {
        let of_row = |part| ratio(part, row.messages).map_or_else(String::new, percent);
        let share = ratio(row.messages, whole);
        RowView {
            key: row.key.clone().unwrap_or_else(|| "(no address)".to_owned()),
            domain: row.domain.clone().unwrap_or_default(),
            messages: thousands(row.messages),
            share: share.map_or_else(String::new, percent),
            bar: share.map_or(0, |share| (share * 100.0).round().clamp(0.0, 100.0) as u32),
            pass: thousands(row.dmarc_pass),
            fail: thousands(row.dmarc_fail),
            compliance: of_row(row.dmarc_pass),
            dkim: of_row(row.dkim_aligned),
            spf: of_row(row.spf_aligned),
            quarantine: thousands(row.disposition_quarantine),
            reject: thousands(row.disposition_reject),
        }
    }
}

/// What to fix, most urgent first: the failing sources, then each domain's readiness for a
/// stricter policy.
fn fixes(digest: &Digest) -> Vec<String> {
    let mut fixes = Vec::new();
    for source in digest.failing_sources.iter().filter(|source| source.dmarc_fail > 0) {
        let address = source.key.as_deref().unwrap_or("records without a source address");
        let domain = source.domain.as_deref().unwrap_or("your domain");
        let failing = thousands(source.dmarc_fail);
        let advice = if source.dmarc_pass > 0 {
            format!(
                "it also sent {} passing messages, so it is probably a service you use with an incomplete setup: \
                 sign all of its mail with DKIM for {domain} and list it in {domain}'s SPF record",
                thousands(source.dmarc_pass)
            )
        } else if source.dkim_aligned == 0 && source.spf_aligned == 0 {
            format!(
                "neither DKIM nor SPF aligned. Yours? Set up DKIM for {domain} there (or add it to SPF). \
                 Not yours? Someone is sending as {domain}: p=reject stops it"
            )
        } else {
            format!("some of its messages align and some do not: check its DKIM signing and SPF for {domain}")
        };
        fixes.push(format!("{address} sent {failing} messages for {domain} that failed DMARC; {advice}."));
    }
    for domain in &digest.domains {
        fixes.push(readiness(domain));
    }
    if fixes.is_empty() {
        fixes.push("Nothing to fix: no aggregate report in this period.".to_owned());
    }
    fixes
}

/// A domain's readiness for `p=quarantine` and `p=reject`, with the evidence.
pub(crate) fn readiness(domain: &DomainStanding) -> String {
    let name = &domain.domain;
    let compliance = ratio(domain.dmarc_pass, domain.messages).unwrap_or(0.0);
    let policy = domain.policy.as_deref().unwrap_or("not reported");
    let evidence = format!(
        "{} of {} messages compliant over {} day{}, published p={policy}",
        percent(compliance),
        thousands(domain.messages),
        domain.days,
        if domain.days == 1 { "" } else { "s" }
    );
    let verdict = if domain.messages < READINESS_MIN_MESSAGES {
        format!("too little mail for a verdict (fewer than {} messages)", thousands(READINESS_MIN_MESSAGES))
    } else if compliance >= REJECT_COMPLIANCE {
        match policy {
            "reject" => "at p=reject and compliant: keep watching new sources".to_owned(),
            _ => "ready for p=reject once this holds for two weeks".to_owned(),
        }
    } else if compliance >= QUARANTINE_COMPLIANCE {
        match policy {
            "quarantine" | "reject" => {
                format!("below {} compliance for p=reject: fix the failing sources above", percent(REJECT_COMPLIANCE))
            }
            _ => "ready for p=quarantine; fix the failing sources above before p=reject".to_owned(),
        }
    } else if matches!(policy, "quarantine" | "reject") {
        format!(
            "enforcing p={policy} below {} compliance: make sure none of the failing sources above is yours, \
             their mail is being quarantined or rejected",
            percent(QUARANTINE_COMPLIANCE)
        )
    } else {
        format!(
            "not ready for enforcement (below {} compliance): align the failing sources above first",
            percent(QUARANTINE_COMPLIANCE)
        )
    };
    format!("{name}: {verdict} ({evidence}).")
}

pub(crate) fn ratio(part: i128, whole: i128) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// `0.9712` as `97.1%`; never rounds a share below 100% up to `100.0%`.
pub(crate) fn percent(fraction: f64) -> String {
    let tenths = (fraction * 1000.0).round();
    let tenths = if tenths >= 1000.0 && fraction < 1.0 { 999.0 } else { tenths };
    format!("{:.1}%", tenths / 10.0)
}

/// `1234567` as `1,234,567`.
pub fn thousands(value: i128) -> String {
    let digits = value.unsigned_abs().to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if value < 0 {
        text.push('-');
    }
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// `+1,234` or `-56`.
fn signed(value: i128) -> String {
    let mut text = String::new();
    if value > 0 {
        let _ = write!(text, "+");
    }
    text.push_str(&thousands(value));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> Digest {
        let source = |key: &str, domain: &str, pass: i128, fail: i128, dkim: i128| Counts {
            key: Some(key.to_owned()),
            domain: Some(domain.to_owned()),
            messages: pass + fail,
            dmarc_pass: pass,
            dmarc_fail: fail,
            dkim_aligned: dkim,
            spf_aligned: pass,
            disposition_none: pass,
            disposition_quarantine: fail,
            disposition_reject: 0,
        };
        Digest {
            scope: "<b>example.org</b>".to_owned(),
            period: "week".to_owned(),
            first_day: "2026-11-24".to_owned(),
            last_day: "2026-11-30".to_owned(),
            previous_first_day: "2026-11-17".to_owned(),
            previous_last_day: "2026-11-23".to_owned(),
            current: Totals {
                messages: 1_250_000,
                dmarc_pass: 1_200_000,
                dkim_aligned: 1_100_000,
                spf_aligned: 1_000_000,
                enforced: 50_000,
                reports: 40,
                reporters: 4,
                domains: 1,
                failure_reports: 3,
            },
            previous: Totals { messages: 1_000_000, dmarc_pass: 990_000, ..Totals::default() },
            results: vec![source("pass", "example.org", 1_200_000, 0, 0), source("fail", "example.org", 0, 50_000, 0)],
            top_sources: vec![source("192.0.2.1", "example.org", 1_200_000, 0, 1_100_000)],
            failing_sources: vec![
                source("<script>alert(1)</script>", "example.org", 0, 40_000, 0),
                source("198.51.100.7", "example.org", 10, 10_000, 0),
            ],
            domains: vec![DomainStanding {
                domain: "example.org".to_owned(),
                messages: 1_250_000,
                dmarc_pass: 1_200_000,
                policy: Some("none".to_owned()),
                days: 7,
            }],
            attachments: vec!["report.html".to_owned()],
            notes: vec!["The PDF is not attached: no chromium".to_owned()],
        }
    }

    #[test]
    fn numbers_are_grouped_and_shares_never_round_up_to_all() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(percent(0.9712), "97.1%");
        assert_eq!(percent(0.99999), "99.9%");
        assert_eq!(percent(1.0), "100.0%");
        assert_eq!(signed(12), "+12");
        assert_eq!(signed(-3), "-3");
    }

    #[test]
    fn the_html_body_has_no_style_svg_or_script_and_escapes_markup() -> Result<(), minijinja::Error> {
        let rendered = render(&digest())?;
        let html = rendered.html.to_ascii_lowercase();
        for banned in ["<style", "<svg", "<script", "<img", "<link", "class="] {
            assert!(!html.contains(banned), "{banned} in the HTML body");
        }
        assert!(rendered.html.contains("&lt;script&gt;alert(1)&lt;"), "a source is escaped");
        assert!(rendered.html.contains("DMARC digest: &lt;b&gt;example.org&lt;"), "the scope is escaped");
        assert!(rendered.html.contains(r#"data-figure="messages""#));
        assert!(rendered.html.contains("1,250,000"));
        // 96.0% now against 99.0% before: three points down, in red.
        assert!(rendered.html.contains("96.0%") && rendered.html.contains("-3.0 pt"), "{}", rendered.html);
        assert!(rendered.text.contains("DMARC compliance: 96.0%, -3.0 pt"), "{}", rendered.text);
        assert!(rendered.text.contains("<script>alert(1)</script>"), "plain text is not escaped");
        assert!(rendered.subject.contains("1,250,000 messages, 96.0% DMARC compliant"), "{}", rendered.subject);
        assert!(rendered.text.contains("The PDF is not attached: no chromium"));
        Ok(())
    }

    #[test]
    fn fixes_name_the_failing_sources_and_the_readiness() {
        let fixes = fixes(&digest());
        assert!(fixes[0].starts_with("<script>alert(1)</script> sent 40,000 messages for example.org"), "{fixes:?}");
        assert!(fixes[0].contains("neither DKIM nor SPF aligned. Yours? Set up DKIM for example.org"), "{fixes:?}");
        assert!(fixes[1].contains("also sent 10 passing messages"), "{fixes:?}");
        assert!(fixes[2].starts_with("example.org: ready for p=quarantine"), "{fixes:?}");
        assert!(fixes[2].contains("96.0% of 1,250,000 messages compliant over 7 days, published p=none"), "{fixes:?}");
    }

    #[test]
    fn readiness_depends_on_compliance_volume_and_the_published_policy() {
        let standing = |pass: i128, messages: i128, policy: &str| DomainStanding {
            domain: "example.org".to_owned(),
            messages,
            dmarc_pass: pass,
            policy: Some(policy.to_owned()),
            days: 1,
        };
        assert!(readiness(&standing(995, 1_000, "none")).contains("ready for p=reject once this holds"));
        assert!(readiness(&standing(995, 1_000, "reject")).contains("at p=reject and compliant"));
        assert!(readiness(&standing(960, 1_000, "quarantine")).contains("below 99.0% compliance for p=reject"));
        assert!(readiness(&standing(900, 1_000, "none")).contains("not ready for enforcement"));
        assert!(readiness(&standing(900, 1_000, "reject")).contains("enforcing p=reject below 95.0% compliance"));
        assert!(readiness(&standing(99, 100, "none")).contains("too little mail for a verdict"));
        assert!(readiness(&standing(99, 100, "none")).contains("over 1 day, published p=none"));
    }

    #[test]
    fn an_empty_period_says_so() -> Result<(), minijinja::Error> {
        let empty = Digest { scope: "all domains".to_owned(), period: "day".to_owned(), ..Digest::default() };
        let rendered = render(&empty)?;
        assert!(rendered.text.contains("No aggregate report covers this period."), "{}", rendered.text);
        assert!(rendered.html.contains("No aggregate report covers this period."));
        assert!(rendered.subject.ends_with(": no aggregate reports"), "{}", rendered.subject);
        Ok(())
    }
}
