//! `dmarcpipe report --by KEY`: rollups of aggregate reports as a table, CSV or JSON, with
//! the number of failure (forensic) reports per domain, source and day beside them, failure
//! reports by Auth-Failure type, and messages by traffic class. `--tls`: rollups of SMTP TLS
//! reports instead. `--format html|pdf`: the visual report (every view in one page; the PDF is
//! its executive summary, printed by headless Chromium, see [`super::pdf`]).

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{Duration, NaiveDate, Utc};
use clap::ValueEnum;
use dmarcpipe_ingest::enrich::geo::{GeoDatabases, GeoPaths, default_geoip_dir};
use dmarcpipe_render::report::page::{self, Version};
use dmarcpipe_render::{Cell, Format, Table};
use dmarcpipe_store::Store;
use dmarcpipe_store::forensic::{self, CountKey};
use dmarcpipe_store::rollup::{self, RollupFilter, RollupKey, RollupRow};
use dmarcpipe_store::tlsrpt::{self, TlsKey};

use super::connect;
use crate::cli::{ReportArgs, ReportFormat, RollupBy};
use crate::config::FileConfig;
use crate::exit;

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: ReportArgs) -> Result<u8> {
    let (since, until) = day_range(args.since.as_deref(), args.until.as_deref(), Utc::now().date_naive())?;
    let filter = RollupFilter { domain: args.domain.clone(), since, until };
    let format = match args.format {
        ReportFormat::Table => Format::Table,
        ReportFormat::Csv => Format::Csv,
        ReportFormat::Json => Format::Json,
        ReportFormat::Html | ReportFormat::Pdf => return visual(config, database_url, &args, &filter).await,
    };
    let Some(by) = args.by else {
        bail!(
            "--by KEY is needed with --format table, csv or json (the visual report, --format html or pdf, needs none)"
        );
    };
    // A key that does not fit is refused before connecting.
    let rollup = Rollup::of(args.tls, by)?;
    let store = connect(config, database_url, 2).await?;
    if matches!(rollup, Rollup::Dmarc(..) | Rollup::Class) {
        compact(&store).await;
    }
    let mut table = match rollup {
        Rollup::Tls(key) => tls_table(&store, key, &filter).await?,
        Rollup::AuthFailure => auth_failure_table(&store, &filter).await?,
        Rollup::Class => class_table(&store, &filter).await?,
        Rollup::Dmarc(key, forensic_key) => rollup_table(&store, key, forensic_key, &filter).await?,
    };
    if format == Format::Table
        && let Rollup::Dmarc(key, _) = rollup
    {
        name_missing_keys(&mut table, key);
    }
    let text = dmarcpipe_render::render(&table, format);
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(exit::OK)
}

/// The visual report: the HTML page, or its executive summary as PDF (which needs `-o`).
async fn visual(
    config: &FileConfig,
    database_url: Option<&str>,
    args: &ReportArgs,
    filter: &RollupFilter,
) -> Result<u8> {
    let pdf = args.format == ReportFormat::Pdf;
    if args.tls {
        bail!(
            "--format {} is the visual DMARC report; TLS reports come as table, csv or json",
            format_name(args.format)
        );
    }
    if let Some(by) = args.by {
        bail!(
            "--by {} does not go with --format {}: the visual report shows every view",
            key_name(by),
            format_name(args.format)
        );
    }
    let output = match (&args.output, pdf) {
        (None, true) => bail!("--format pdf writes a file: add -o report.pdf"),
        (output, _) => output.clone(),
    };
    // Refused before any work when Chromium is missing.
    let chromium = if pdf { Some(super::pdf::Chromium::find()?) } else { None };
    let store = connect(config, database_url, 2).await?;
    compact(&store).await;
    let html = visual_html(&store, filter, if pdf { Version::Executive } else { Version::Full }).await?;
    match (chromium, &output) {
        (Some(chromium), Some(path)) => chromium.print_to_pdf(&html, path)?,
        (_, Some(path)) => std::fs::write(path, html).with_context(|| format!("cannot write {}", path.display()))?,
        (_, None) => std::io::stdout().lock().write_all(html.as_bytes())?,
    }
    Ok(exit::OK)
}

/// The visual report's page for the filter, with the attribution the geolocation data asks for.
pub(crate) async fn visual_html(store: &Store, filter: &RollupFilter, version: Version) -> Result<String> {
    let mut data = dmarcpipe_store::report::gather(store.pool(), filter)
        .await
        .context("cannot query the rollups for the report")?;
    if !data.countries.is_empty() {
        data.attributions.extend(geo_attributions());
    }
    page::render(&data, version).context("cannot render the report (a template bug)")
}

/// The credits of the geolocation databases in the default directory (`dmarcpipe geoip
/// fetch`), from their source records; none when there is none.
fn geo_attributions() -> Vec<String> {
    let Some(dir) = default_geoip_dir() else { return Vec::new() };
    let paths = GeoPaths::in_dir(&dir);
    if paths.is_empty() {
        return Vec::new();
    }
    match GeoDatabases::open(&paths) {
        Ok(databases) => databases.attributions(),
        Err(err) => {
            tracing::warn!(error = %err, "Geolocation database not readable; the report shows no attribution for it.");
            Vec::new()
        }
    }
}

fn format_name(format: ReportFormat) -> String {
    format.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
}

/// Messages and sources per traffic class, with each class's share of the messages.
async fn class_table(store: &Store, filter: &RollupFilter) -> Result<Table> {
    let rows =
        dmarcpipe_store::report::classes(store.pool(), filter).await.context("cannot query the traffic classes")?;
    let total: i128 = rows.iter().map(|row| row.messages.0).sum();
    let mut table =
        Table::titled([("class", "class"), ("messages", "messages"), ("share", "share"), ("sources", "sources")]);
    for row in rows {
        let share = if total > 0 { Cell::Share(row.messages.0 as f64 / total as f64) } else { Cell::Null };
        table.push(vec![Cell::from(row.class), row.messages.0.into(), share, row.sources.into()]);
    }
    Ok(table)
}

/// Merges the rollup rows appended since the last compaction when enough wait, so that the
/// query adds up one row per key rather than one per report. The rollups are exact either way:
/// a compaction that cannot run (another one is running, or the role may not write) is skipped.
async fn compact(store: &Store) {
    match dmarcpipe_store::compact::compact_if_due(store.pool()).await {
        Ok(Some(done)) => tracing::info!(rows = done.rows, held_back = done.held_back, "Rollups compacted."),
        Ok(None) => {}
        Err(err) => tracing::warn!(error = %err, "Rollups not compacted; the report adds up every row."),
    }
}

/// The aggregate rollup by `key`, with a `forensic` column of failure reports when they can
/// be counted by the same key (keys with failure reports only get a row of their own). Each
/// row becomes the table's cells as it arrives (see [`rollup::query_map`]).
pub(crate) async fn rollup_table(
    store: &Store,
    key: RollupKey,
    forensic_key: Option<CountKey>,
    filter: &RollupFilter,
) -> Result<Table> {
    let forensic_counts: HashMap<Option<String>, i64> = match forensic_key {
        Some(forensic_key) => forensic::counts(store.pool(), forensic_key, filter)
            .await
            .context("cannot count failure reports")?
            .into_iter()
            .collect(),
        None => HashMap::new(),
    };
    let key_columns = key_columns(key);
    let mut columns: Vec<(&str, &str)> = key_columns.iter().map(|&(name, title, _)| (name, title)).collect();
    columns.extend([
        ("messages", "messages"),
        ("dmarc_pass", "pass"),
        ("dmarc_fail", "fail"),
        ("disposition_none", "none"),
        ("disposition_quarantine", "quarantine"),
        ("disposition_reject", "reject"),
        ("dkim_aligned", "dkim ok"),
        ("spf_aligned", "spf ok"),
        ("records", "records"),
    ]);
    // By source, each row is one.
    let count_sources = key.counts_sources();
    if count_sources {
        columns.push(("sources", "sources"));
    }
    if forensic_key.is_some() {
        columns.push(("forensic", "forensic"));
    }
    let mut table = Table::titled(columns);
    let width = table.columns.len();
    let cells = |mut row: RollupRow| -> Vec<Cell> {
        let forensic = forensic_key.map(|_| Cell::from(forensic_counts.get(&row.key).copied().unwrap_or(0)));
        let values = std::iter::once(row.key.take()).chain(std::mem::take(&mut row.details));
        let mut cells: Vec<Cell> = Vec::with_capacity(width);
        cells.extend(
            key_columns.iter().zip(values.chain(std::iter::repeat(None))).map(|(&(.., kind), value)| kind.cell(value)),
        );
        cells.extend([
            row.messages.0.into(),
            row.dmarc_pass.0.into(),
            row.dmarc_fail.0.into(),
            row.disposition_none.0.into(),
            row.disposition_quarantine.0.into(),
            row.disposition_reject.0.into(),
            row.dkim_aligned.0.into(),
            row.spf_aligned.0.into(),
            row.records.0.into(),
        ]);
        if count_sources {
            cells.push(row.sources.unwrap_or(0).into());
        }
        cells.extend(forensic);
        cells
    };
    // The keys with failure reports that have a row (few: most keys have none).
    let mut with_row = HashSet::new();
    let rows = rollup::query_map(store.pool(), key, filter, |row| {
        if forensic_counts.contains_key(&row.key) {
            with_row.insert(row.key.clone());
        }
        cells(row)
    })
    .await
    .context("cannot query the rollups")?;
    table.rows = rows;
    let mut forensic_only: Vec<&Option<String>> =
        forensic_counts.keys().filter(|value| !with_row.contains(*value)).collect();
    forensic_only.sort();
    for value in forensic_only {
        table.push(cells(RollupRow { key: value.clone(), ..RollupRow::default() }));
    }
    if key == RollupKey::Day && forensic_key.is_some() {
        table.rows.sort_by(|a, b| day_of(a).cmp(&day_of(b)));
    }
    Ok(table)
}

/// The day of a row of the rollup by day (its first cell), `None` for a row without one.
fn day_of(row: &[Cell]) -> Option<&str> {
    match row.first() {
        Some(Cell::Text(day)) => Some(day),
        _ => None,
    }
}

/// How the values of a key or detail column are shown.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Int,
    Number,
}

impl Kind {
    /// A cell of the value as the query gives it (as text): numbers as numbers.
    fn cell(self, value: Option<String>) -> Cell {
        match (self, value) {
            (_, None) => Cell::Null,
            (Kind::Text, Some(text)) => Cell::Text(text),
            (Kind::Int, Some(text)) => text.parse::<i128>().map_or(Cell::Text(text), Cell::Int),
            (Kind::Number, Some(text)) => text.parse::<f64>().map_or(Cell::Text(text), Cell::Number),
        }
    }
}

/// The columns of a rollup's key and of its details: (name, title, kind).
fn key_columns(key: RollupKey) -> Vec<(&'static str, &'static str, Kind)> {
    use Kind::{Int, Number, Text};
    match key {
        RollupKey::Source => vec![
            ("source", "source", Text),
            ("host", "host", Text),
            ("sender", "sender", Text),
            ("country", "country", Text),
            ("asn", "asn", Int),
        ],
        RollupKey::Sender => vec![("sender", "sender", Text), ("kind", "kind", Text)],
        RollupKey::Country => vec![("country", "country", Text), ("country_name", "name", Text)],
        RollupKey::Asn => vec![("asn", "asn", Int), ("as_org", "organisation", Text)],
        RollupKey::Location => vec![
            ("latitude", "latitude", Number),
            ("longitude", "longitude", Number),
            ("country", "country", Text),
            ("city", "city", Text),
        ],
        other => vec![(other.name(), other.name(), Text)],
    }
}

/// `--by` as typed on the command line.
fn key_name(by: RollupBy) -> String {
    by.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
}

/// What a `report` command shows.
enum Rollup {
    /// SMTP TLS reports by this key.
    Tls(TlsKey),
    /// Failure reports by Auth-Failure type.
    AuthFailure,
    /// Aggregate reports by traffic class.
    Class,
    /// Aggregate reports by this key, with failure report counts by the second when they fit.
    Dmarc(RollupKey, Option<CountKey>),
}

impl Rollup {
    fn of(tls: bool, by: RollupBy) -> Result<Rollup> {
        Ok(match (tls, by) {
            (true, RollupBy::PolicyDomain | RollupBy::Domain) => Rollup::Tls(TlsKey::PolicyDomain),
            (true, RollupBy::ResultType) => Rollup::Tls(TlsKey::ResultType),
            (true, RollupBy::MxHost) => Rollup::Tls(TlsKey::MxHost),
            (true, RollupBy::Org) => Rollup::Tls(TlsKey::Org),
            (true, RollupBy::Day) => Rollup::Tls(TlsKey::Day),
            (
                true,
                RollupBy::Result
                | RollupBy::Source
                | RollupBy::AuthFailure
                | RollupBy::Class
                | RollupBy::Host
                | RollupBy::Sender
                | RollupBy::Country
                | RollupBy::Asn
                | RollupBy::Location,
            ) => {
                bail!("--tls groups by policy-domain, result-type, mx-host, org or day, not {}", key_name(by))
            }
            (false, RollupBy::ResultType | RollupBy::MxHost) => {
                bail!("--by {} is a key of TLS reports: add --tls", key_name(by))
            }
            (false, RollupBy::AuthFailure) => Rollup::AuthFailure,
            (false, RollupBy::Class) => Rollup::Class,
            (false, RollupBy::Result) => Rollup::Dmarc(RollupKey::Result, None),
            (false, RollupBy::Org) => Rollup::Dmarc(RollupKey::Org, None),
            (false, RollupBy::Source) => Rollup::Dmarc(RollupKey::Source, Some(CountKey::Source)),
            (false, RollupBy::Domain | RollupBy::PolicyDomain) => {
                Rollup::Dmarc(RollupKey::Domain, Some(CountKey::Domain))
            }
            (false, RollupBy::Day) => Rollup::Dmarc(RollupKey::Day, Some(CountKey::Day)),
            (false, RollupBy::Host) => Rollup::Dmarc(RollupKey::Host, None),
            (false, RollupBy::Sender) => Rollup::Dmarc(RollupKey::Sender, None),
            (false, RollupBy::Country) => Rollup::Dmarc(RollupKey::Country, None),
            (false, RollupBy::Asn) => Rollup::Dmarc(RollupKey::Asn, None),
            (false, RollupBy::Location) => Rollup::Dmarc(RollupKey::Location, None),
        })
    }
}

/// The TLS report rollup by `key`: reports, policies, sessions, successful and failed
/// sessions, and the failure share (see `dmarcpipe_store::tlsrpt` for failure-level keys).
async fn tls_table(store: &Store, key: TlsKey, filter: &RollupFilter) -> Result<Table> {
    let rows = tlsrpt::query(store.pool(), key, filter).await.context("cannot query the TLS reports")?;
    let title = key.name().replace('_', " ");
    let mut table = Table::titled([
        (key.name(), title.as_str()),
        ("reports", "reports"),
        ("policies", "policies"),
        ("sessions", "sessions"),
        ("successful", "successful"),
        ("failed", "failed"),
        ("failure_share", "failed %"),
    ]);
    for row in rows {
        table.push(vec![
            Cell::from(row.key),
            row.reports.into(),
            row.policies.into(),
            row.sessions.0.into(),
            row.successful.0.into(),
            row.failed.0.into(),
            row.failure_share.map_or(Cell::Null, Cell::Share),
        ]);
    }
    Ok(table)
}

/// In a terminal table, records without a source address, and sources whose ASN or location
/// is not known, are said so rather than left blank (CSV leaves the cell empty and JSON gives
/// `null`).
fn name_missing_keys(table: &mut Table, key: RollupKey) {
    let missing = match key {
        RollupKey::Source => "(no address)",
        RollupKey::Asn | RollupKey::Location => "unknown",
        _ => return,
    };
    for row in &mut table.rows {
        if let Some(cell @ Cell::Null) = row.first_mut() {
            *cell = Cell::from(missing);
        }
    }
}

/// Failure reports by Auth-Failure type.
async fn auth_failure_table(store: &Store, filter: &RollupFilter) -> Result<Table> {
    let rows = forensic::by_auth_failure(store.pool(), filter).await.context("cannot count failure reports")?;
    let mut table = Table::titled([
        ("auth_failure", "auth failure"),
        ("messages", "messages"),
        ("reports", "reports"),
        ("domains", "domains"),
        ("sources", "sources"),
        ("first_arrival", "first arrival"),
        ("last_arrival", "last arrival"),
    ]);
    for row in rows {
        table.push(vec![
            Cell::from(row.auth_failure),
            row.messages.into(),
            row.reports.into(),
            row.domains.into(),
            row.sources.into(),
            row.first_arrival.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).into(),
            row.last_arrival.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)).into(),
        ]);
    }
    Ok(table)
}

/// The days of `--since` and `--until` (exclusive); an error when they select no day at all.
pub fn day_range(
    since: Option<&str>,
    until: Option<&str>,
    today: NaiveDate,
) -> Result<(Option<NaiveDate>, Option<NaiveDate>)> {
    let since = since.map(|text| parse_day(text, today)).transpose().context("--since")?;
    let until = until.map(|text| parse_day(text, today)).transpose().context("--until")?;
    if let (Some(first), Some(end)) = (since, until)
        && first >= end
    {
        bail!(
            "--since {first} is not before --until {end}: no day can match (--until is exclusive: \
             --since {first} --until {} is the day {first})",
            first + Duration::days(1)
        );
    }
    Ok((since, until))
}

/// What a day may be given as, for error messages.
const DAY_FORMS: &str = "2026-11-01, 30d, 2w, 36h, today, yesterday";

/// A day given as `2026-11-01`, `today`, `yesterday`, or an age: `30d`, `2w`, `36h`.
pub fn parse_day(text: &str, today: NaiveDate) -> Result<NaiveDate> {
    let text = text.trim();
    match text {
        "today" => return Ok(today),
        "yesterday" => return Ok(today - Duration::days(1)),
        _ => {}
    }
    if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day);
    }
    if let Ok(moment) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(moment.with_timezone(&Utc).date_naive());
    }
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let Ok(number) = number.parse::<i64>() else {
        bail!("`{text}` is not a day ({DAY_FORMS})");
    };
    let days = match unit {
        "d" | "day" | "days" => number,
        "w" | "week" | "weeks" => number * 7,
        "h" | "hours" => number.div_euclid(24),
        _ => bail!("`{text}` is not a day ({DAY_FORMS})"),
    };
    Ok(today - Duration::days(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_keys_only_with_tls_and_dmarc_keys_only_without() {
        assert!(matches!(Rollup::of(true, RollupBy::MxHost), Ok(Rollup::Tls(TlsKey::MxHost))));
        assert!(matches!(Rollup::of(true, RollupBy::Domain), Ok(Rollup::Tls(TlsKey::PolicyDomain))));
        assert!(matches!(Rollup::of(false, RollupBy::PolicyDomain), Ok(Rollup::Dmarc(RollupKey::Domain, _))));
        let err = Rollup::of(true, RollupBy::Source).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("not source"), "{err}");
        let err = Rollup::of(false, RollupBy::ResultType).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("--by result-type is a key of TLS reports"), "{err}");
    }

    #[test]
    fn days_absolute_relative_and_named() -> Result<()> {
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).context("a date")?;
        assert_eq!(parse_day("2026-11-01", today)?, NaiveDate::from_ymd_opt(2026, 11, 1).context("a date")?);
        assert_eq!(parse_day("30d", today)?, NaiveDate::from_ymd_opt(2026, 10, 29).context("a date")?);
        assert_eq!(parse_day("2w", today)?, NaiveDate::from_ymd_opt(2026, 11, 14).context("a date")?);
        assert_eq!(parse_day("yesterday", today)?, NaiveDate::from_ymd_opt(2026, 11, 27).context("a date")?);
        assert!(parse_day("soon", today).is_err());
        assert!(parse_day("5y", today).is_err());
        let error = format!("{:#}", parse_day("last tuesday", today).expect_err("not a day"));
        assert!(error.contains("yesterday"), "{error}");
        Ok(())
    }

    #[test]
    fn since_must_come_before_until() -> Result<()> {
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).context("a date")?;
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).context("a date");
        assert_eq!(day_range(Some("2026-11-01"), Some("2026-11-02"), today)?, (Some(day(1)?), Some(day(2)?)));
        assert_eq!(day_range(Some("2026-11-01"), None, today)?, (Some(day(1)?), None));
        for (since, until) in [("2026-11-05", "2026-11-01"), ("2026-11-01", "2026-11-01"), ("today", "30d")] {
            let error = format!("{:#}", day_range(Some(since), Some(until), today).expect_err("no day can match"));
            assert!(error.contains("is not before --until"), "{error}");
        }
        Ok(())
    }
}
