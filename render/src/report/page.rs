//! The visual report as one self-contained HTML file (`dmarcpipe report --format html`), and
//! its short executive version (printed to PDF by `dmarcpipe report --format pdf`).
//!
//! Input: a [`ReportData`]. Output: HTML text with inline CSS and inline SVG (drawn by
//! [`super::chart`] and [`super::map`]): no network access, no external fonts, no script needed
//! to read it (one small inline script only makes tables sortable). Light and dark follow
//! `prefers-color-scheme`, print forces light; the layout goes from a phone to a wide screen
//! (wide tables scroll inside their own box, never the page).
//!
//! The template (`templates/report.html`) is rendered by minijinja with HTML escaping on (its
//! name ends in `.html`), so every value from a report, such as a reporter's `org_name`, shows
//! as text; only the SVG we draw is inserted as it is ([`Value::from_safe_string`]).

use minijinja::value::{Serde, Value};
use minijinja::{Environment, context};
use serde::Serialize;

use super::chart::{self, Bar, Series};
use super::data::{CLASSES, ClassCounts, GroupRow, ReportData, ServiceFix};
use super::map::{self, CountryFigure};
use crate::digest::{FigureView, headline_figures, percent, ratio, readiness, thousands};

const TEMPLATE: &str = include_str!("../../templates/report.html");

/// Which version of the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Every section.
    Full,
    /// Headline figures, the class chart, what to fix and the map, for one to three printed
    /// pages.
    Executive,
}

/// Renders the report. Fails only on a template bug.
pub fn render(data: &ReportData, version: Version) -> Result<String, minijinja::Error> {
    let mut env = Environment::new();
    env.add_template("report.html", TEMPLATE)?;
    let view = View::of(data);
    let charts = Charts::of(data);
    env.get_template("report.html")?.render(context! {
        r => Serde(&view),
        executive => version == Version::Executive,
        class_chart => Value::from_safe_string(charts.classes),
        class_meter => Value::from_safe_string(charts.compliance),
        sources_chart => Value::from_safe_string(charts.sources),
        world_map => Value::from_safe_string(charts.map),
    })
}

/// The SVG drawn for the page.
struct Charts {
    classes: String,
    compliance: String,
    sources: String,
    map: String,
}

impl Charts {
    fn of(data: &ReportData) -> Charts {
        let days: Vec<String> = data.days.iter().map(|day| day.day.clone()).collect();
        let series: Vec<Series> = CLASSES
            .iter()
            .enumerate()
            .map(|(index, class)| Series {
                label: class_label(class).to_owned(),
                css_class: format!("c-{class}"),
                values: data.days.iter().map(|day| clamp(day.classes.values()[index])).collect(),
            })
            .collect();
        let bars: Vec<Bar> = data
            .sources
            .iter()
            .take(10)
            .map(|source| Bar {
                label: source_label(source.ip.as_deref(), source.sender.as_deref(), source.host.as_deref()),
                total: clamp(source.messages),
                failing: clamp(source.messages - source.dmarc_pass),
            })
            .collect();
        let countries: Vec<CountryFigure> = data
            .countries
            .iter()
            .filter_map(|country| {
                Some(CountryFigure {
                    code: country.key.clone()?.to_uppercase(),
                    messages: clamp(country.messages),
                    failing: clamp(country.failing),
                })
            })
            .collect();
        Charts {
            classes: chart::stacked_daily(&days, &series, "Messages per day by traffic class"),
            compliance: chart::share_meter(
                ratio(data.current.dmarc_pass, data.current.messages).unwrap_or(0.0),
                "DMARC compliance",
            ),
            sources: chart::horizontal_bars(&bars, "Top sources: messages, failing part darker"),
            map: map::world_svg(&countries, "Messages per country of the source address"),
        }
    }
}

/// A count for the charts (they take `u64`; sums beyond that are capped).
fn clamp(value: i128) -> u64 {
    u64::try_from(value.max(0)).unwrap_or(u64::MAX)
}

fn class_label(class: &str) -> &'static str {
    match class {
        "compliant" => "Compliant",
        "forwarded" => "Forwarded",
        "misconfigured" => "Misconfigured",
        _ => "Unknown / threat",
    }
}

fn source_label(ip: Option<&str>, sender: Option<&str>, host: Option<&str>) -> String {
    let ip = ip.unwrap_or("(no address)");
    match sender.or(host) {
        Some(name) => format!("{ip} ({name})"),
        None => ip.to_owned(),
    }
}

/// What the template sees: every number formatted.
#[derive(Debug, Serialize)]
struct View {
    title: String,
    scope: String,
    period: String,
    previous_period: String,
    generated: String,
    has_data: bool,
    figures: Vec<FigureView>,
    classes: Vec<ClassView>,
    results: Vec<Vec<String>>,
    sources: Vec<SourceView>,
    orgs: Vec<GroupView>,
    hosts: Vec<GroupView>,
    senders: Vec<GroupView>,
    countries: Vec<GroupView>,
    details: Vec<Vec<String>>,
    forensic: Vec<Vec<String>>,
    services: Vec<FixView>,
    unknown: Vec<Vec<String>>,
    readiness: Vec<String>,
    attributions: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ClassView {
    key: &'static str,
    label: &'static str,
    messages: String,
    share: String,
    /// Against the previous period, in percentage points of the share.
    delta: String,
    direction: &'static str,
}

#[derive(Debug, Serialize)]
struct SourceView {
    ip: String,
    host: String,
    sender: String,
    country: String,
    asn: String,
    class: &'static str,
    class_label: &'static str,
    messages: String,
    compliance: String,
    dkim: String,
    spf: String,
}

#[derive(Debug, Serialize)]
struct GroupView {
    key: String,
    detail: String,
    messages: String,
    compliance: String,
    dkim: String,
    spf: String,
    count: String,
    failing: String,
}

#[derive(Debug, Serialize)]
struct FixView {
    domain: String,
    service: String,
    failing: String,
    problem: String,
    fix: String,
}

impl View {
    fn of(data: &ReportData) -> View {
        let period = match (&data.first_day, &data.last_day) {
            (Some(first), Some(last)) => crate::digest::span(first, last),
            _ => "no reports".to_owned(),
        };
        let previous_period = match (&data.previous_first_day, &data.previous_last_day) {
            (Some(first), Some(last)) => crate::digest::span(first, last),
            _ => String::new(),
        };
        let whole = data.current.messages;
        let share_of = |part: i128, of: i128| ratio(part, of).map_or_else(|| "–".to_owned(), percent);
        View {
            title: format!("DMARC report: {}, {period}", data.scope),
            scope: data.scope.clone(),
            period,
            previous_period,
            generated: data.generated.clone(),
            has_data: whole > 0,
            figures: headline_figures(&data.current, &data.previous),
            classes: class_views(&data.classes, &data.previous_classes),
            results: data
                .results
                .iter()
                .map(|row| {
                    vec![
                        row.result.clone(),
                        row.disposition.clone(),
                        thousands(row.messages),
                        share_of(row.messages, whole),
                    ]
                })
                .collect(),
            sources: data
                .sources
                .iter()
                .map(|source| {
                    let class = source.classes.main_class();
                    SourceView {
                        ip: source.ip.clone().unwrap_or_else(|| "(no address)".to_owned()),
                        host: source.host.clone().unwrap_or_default(),
                        sender: source.sender.clone().unwrap_or_default(),
                        country: source.country_code.clone().unwrap_or_default(),
                        asn: match (&source.asn, &source.as_org) {
                            (Some(asn), Some(org)) => format!("AS{asn} {org}"),
                            (Some(asn), None) => format!("AS{asn}"),
                            _ => String::new(),
                        },
                        class,
                        class_label: class_label(class),
                        messages: thousands(source.messages),
                        compliance: share_of(source.dmarc_pass, source.messages),
                        dkim: share_of(source.dkim_aligned, source.messages),
                        spf: share_of(source.spf_aligned, source.messages),
                    }
                })
                .collect(),
            orgs: group_views(&data.orgs),
            hosts: group_views(&data.hosts),
            senders: group_views(&data.senders),
            countries: group_views(&data.countries),
            details: data
                .details
                .iter()
                .map(|row| {
                    vec![
                        row.domain.clone(),
                        row.result.clone(),
                        row.disposition.clone(),
                        row.dkim_aligned.clone(),
                        row.spf_aligned.clone(),
                        thousands(row.messages),
                    ]
                })
                .collect(),
            forensic: data
                .forensic
                .iter()
                .map(|row| {
                    vec![
                        row.domain.clone().unwrap_or_default(),
                        row.auth_failure.clone().unwrap_or_default(),
                        row.source.clone().unwrap_or_default(),
                        row.reports.to_string(),
                        row.last.clone().unwrap_or_default(),
                    ]
                })
                .collect(),
            services: data.services_to_align.iter().map(FixView::of).collect(),
            unknown: data
                .unknown_sources
                .iter()
                .map(|source| {
                    vec![
                        source.domain.clone(),
                        source.ip.clone().unwrap_or_else(|| "(no address)".to_owned()),
                        source.host.clone().unwrap_or_default(),
                        source.country_code.clone().unwrap_or_default(),
                        source.asn.map(|asn| format!("AS{asn}")).unwrap_or_default(),
                        source.as_org.clone().unwrap_or_default(),
                        thousands(source.messages),
                    ]
                })
                .collect(),
            readiness: data
                .domains
                .iter()
                .map(|domain| {
                    let misconfigured = data
                        .misconfigured_by_domain
                        .iter()
                        .find(|(name, _)| *name == domain.domain)
                        .map_or(0, |(_, count)| *count);
                    let verdict = readiness(domain);
                    if misconfigured > 0 {
                        format!(
                            "{verdict} Before p=reject, align the services above: {} messages from them still fail.",
                            thousands(misconfigured)
                        )
                    } else {
                        verdict
                    }
                })
                .collect(),
            attributions: data.attributions.clone(),
        }
    }
}

fn class_views(now: &ClassCounts, before: &ClassCounts) -> Vec<ClassView> {
    let (total, previous_total) = (now.total(), before.total());
    CLASSES
        .iter()
        .zip(now.values().into_iter().zip(before.values()))
        .map(|(class, (messages, previous))| {
            let share = ratio(messages, total);
            let (delta, direction) = match (share, ratio(previous, previous_total)) {
                (Some(share), Some(previous)) => {
                    let points = (share - previous) * 100.0;
                    if (points * 10.0).round() == 0.0 {
                        ("no change".to_owned(), "flat")
                    } else {
                        (format!("{points:+.1} pt"), if points > 0.0 { "up" } else { "down" })
                    }
                }
                _ => ("no data before".to_owned(), "flat"),
            };
            ClassView {
                key: class,
                label: class_label(class),
                messages: thousands(messages),
                share: share.map_or_else(|| "–".to_owned(), percent),
                delta,
                direction,
            }
        })
        .collect()
}

fn group_views(rows: &[GroupRow]) -> Vec<GroupView> {
    let share = |part, whole| ratio(part, whole).map_or_else(|| "–".to_owned(), percent);
    rows.iter()
        .map(|row| GroupView {
            key: row.key.clone().unwrap_or_else(|| "unknown".to_owned()),
            detail: row.detail.clone().unwrap_or_default(),
            messages: thousands(row.messages),
            compliance: share(row.dmarc_pass, row.messages),
            dkim: share(row.dkim_aligned, row.messages),
            spf: share(row.spf_aligned, row.messages),
            count: row.count.to_string(),
            failing: thousands(row.failing),
        })
        .collect()
}

/// Where a known service's DKIM keys are published, for the fix (the service's documented
/// setup; services not listed get the general advice).
const DKIM_SETUPS: &[(&str, &str)] = &[
    ("sendgrid", "set up the CNAMEs for s1._domainkey and s2._domainkey (SendGrid domain authentication)"),
    ("mailchimp", "set up the CNAMEs for k2._domainkey and k3._domainkey (Mailchimp domain authentication)"),
    ("mandrill", "publish the mte1._domainkey and mte2._domainkey CNAMEs (Mandrill sending domain)"),
    ("amazon ses", "publish the three Easy DKIM CNAMEs under _domainkey (Amazon SES verified identity)"),
    ("google", "turn on DKIM signing in the Google Admin console and publish google._domainkey"),
    ("microsoft", "publish the selector1._domainkey and selector2._domainkey CNAMEs and enable DKIM in Microsoft 365"),
    ("mailgun", "publish the DKIM TXT record Mailgun shows for the domain (e.g. pic._domainkey)"),
    ("postmark", "publish the Postmark DKIM TXT record (…pm._domainkey) and a custom Return-Path"),
    ("salesforce", "create a DKIM key in Salesforce setup and publish its two CNAMEs"),
    ("hubspot", "publish the hs1 and hs2 ._domainkey CNAMEs HubSpot shows for the domain"),
    ("zendesk", "publish the zendesk1 and zendesk2 ._domainkey CNAMEs"),
];

impl FixView {
    fn of(service: &ServiceFix) -> FixView {
        let domain = &service.domain;
        let name = &service.service;
        let dkim_share = ratio(service.dkim_aligned, service.messages).unwrap_or(0.0);
        let spf_share = ratio(service.spf_aligned, service.messages).unwrap_or(0.0);
        let dkim_fix = DKIM_SETUPS.iter().find(|(key, _)| name.to_lowercase().contains(key)).map_or_else(
            || format!("sign its mail with a DKIM key published under {domain}"),
            |(_, fix)| (*fix).to_owned(),
        );
        let spf_fix = format!("use a return-path (bounce) domain under {domain} whose SPF record includes {name}");
        let (problem, fix) = if dkim_share < 0.5 && spf_share < 0.5 {
            ("DKIM and SPF not aligned".to_owned(), format!("{dkim_fix}; or {spf_fix}"))
        } else if dkim_share < 0.5 {
            ("DKIM not aligned".to_owned(), dkim_fix)
        } else if spf_share < 0.5 {
            (
                "SPF not aligned".to_owned(),
                format!("{spf_fix}; aligned DKIM alone passes DMARC, but check every server of the service signs"),
            )
        } else {
            (
                "partly aligned".to_owned(),
                format!("some of its servers sign or bounce for {domain} and some do not: {dkim_fix}"),
            )
        };
        FixView {
            domain: domain.clone(),
            service: name.clone(),
            failing: thousands(service.failing),
            problem: format!("{name}: {problem}"),
            fix,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::data::{DayClasses, DomainStanding, SourceRow, Totals};

    fn sample() -> ReportData {
        ReportData {
            scope: "example.org".to_owned(),
            first_day: Some("2026-11-01".to_owned()),
            last_day: Some("2026-11-02".to_owned()),
            previous_first_day: Some("2026-10-30".to_owned()),
            previous_last_day: Some("2026-10-31".to_owned()),
            generated: "2026-12-02 01:00 UTC".to_owned(),
            current: Totals {
                messages: 1_500,
                dmarc_pass: 1_200,
                reporters: 2,
                domains: 1,
                reports: 3,
                ..Totals::default()
            },
            previous: Totals { messages: 1_000, dmarc_pass: 900, ..Totals::default() },
            classes: ClassCounts { compliant: 1_200, forwarded: 100, misconfigured: 150, unknown: 50 },
            days: vec![
                DayClasses {
                    day: "2026-11-01".to_owned(),
                    classes: ClassCounts { compliant: 600, forwarded: 50, misconfigured: 100, unknown: 0 },
                },
                DayClasses {
                    day: "2026-11-02".to_owned(),
                    classes: ClassCounts { compliant: 600, forwarded: 50, misconfigured: 50, unknown: 50 },
                },
            ],
            sources: vec![SourceRow {
                ip: Some("192.0.2.1".to_owned()),
                sender: Some("SendGrid".to_owned()),
                messages: 300,
                dmarc_pass: 150,
                classes: ClassCounts { compliant: 150, misconfigured: 150, ..ClassCounts::default() },
                ..SourceRow::default()
            }],
            orgs: vec![GroupRow {
                key: Some("<script>alert(1)</script> & Co".to_owned()),
                messages: 1_500,
                dmarc_pass: 1_200,
                count: 3,
                ..GroupRow::default()
            }],
            services_to_align: vec![ServiceFix {
                domain: "example.org".to_owned(),
                service: "SendGrid".to_owned(),
                failing: 150,
                messages: 300,
                dkim_aligned: 0,
                spf_aligned: 280,
                sources: 1,
            }],
            domains: vec![DomainStanding {
                domain: "example.org".to_owned(),
                messages: 1_500,
                dmarc_pass: 1_200,
                policy: Some("none".to_owned()),
                days: 2,
            }],
            misconfigured_by_domain: vec![("example.org".to_owned(), 150)],
            ..ReportData::default()
        }
    }

    #[test]
    fn markup_from_reports_shows_as_text() {
        let html = render(&sample(), Version::Full).expect("renders");
        assert!(!html.contains("<script>alert(1)</script>"), "the reporter's name is escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp; Co"), "{html}");
    }

    #[test]
    fn the_fix_names_the_mechanism_and_the_records() {
        let html = render(&sample(), Version::Full).expect("renders");
        assert!(html.contains("SendGrid: DKIM not aligned"), "{html}");
        assert!(html.contains("s1._domainkey and s2._domainkey"));
        assert!(html.contains("Before p=reject, align the services above: 150 messages"));
    }

    #[test]
    fn figures_and_charts_are_in_the_page() {
        let html = render(&sample(), Version::Full).expect("renders");
        assert!(html.contains(r#"data-figure="messages">1,500<"#), "{html}");
        assert!(html.contains(r#"data-class="misconfigured">150<"#));
        assert!(html.contains("<svg"), "charts are inline SVG");
        assert!(!html.contains(" src=") && !html.contains("<link") && !html.contains("@import"), "nothing is loaded");
        for section in ["results", "sources", "orgs", "hosts", "senders", "details", "map", "forensic", "fix"] {
            assert!(html.contains(&format!(r#"id="{section}""#)), "section {section}");
        }
    }

    #[test]
    fn the_executive_version_leaves_the_detail_out() {
        let html = render(&sample(), Version::Executive).expect("renders");
        assert!(html.contains(r#"id="fix""#) && html.contains(r#"id="map""#));
        assert!(!html.contains(r#"id="details""#));
    }

    #[test]
    fn an_empty_report_says_so() {
        let html = render(&ReportData { scope: "all domains".to_owned(), ..ReportData::default() }, Version::Full)
            .expect("renders");
        assert!(html.contains("No aggregate report covers this period"));
    }
}
