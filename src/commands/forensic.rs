//! `dmarcpipe forensic list|show`: failure reports, by their clear metadata, and their sealed
//! samples opened with an age identity.

use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{SecondsFormat, Utc};
use dmarcpipe_ingest::forensic::Sample;
use dmarcpipe_render::{Cell, Format, Table};
use dmarcpipe_store::forensic::{self, ForensicFilter, ForensicRow};
use dmarcpipe_store::seal::Opener;

use super::connect;
use super::report::day_range;
use crate::cli::{ForensicCommand, ForensicListArgs, ForensicShowArgs, OutputFormat};
use crate::config::FileConfig;
use crate::exit;

pub async fn run(config: &FileConfig, database_url: Option<&str>, command: ForensicCommand) -> Result<u8> {
    match command {
        ForensicCommand::List(args) => list(config, database_url, args).await,
        ForensicCommand::Show(args) => show(config, database_url, args).await,
    }
}

async fn list(config: &FileConfig, database_url: Option<&str>, args: ForensicListArgs) -> Result<u8> {
    let (since, until) = day_range(args.since.as_deref(), args.until.as_deref(), Utc::now().date_naive())?;
    let midnight = |day: Option<chrono::NaiveDate>| day.and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc());
    let filter = ForensicFilter {
        domain: args.domain.clone(),
        since: midnight(since),
        until: midnight(until),
        limit: args.limit,
    };
    let store = connect(config, database_url, 2).await?;
    let rows = forensic::list(store.pool(), &filter).await.context("cannot list failure reports")?;
    let text = match args.format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Table => dmarcpipe_render::render(&table(&rows), Format::Table),
        OutputFormat::Csv => dmarcpipe_render::render(&every_column(&rows)?, Format::Csv),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(exit::OK)
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Every column that `forensic list --format json` gives, in its order and with its values
/// (JSON's `true` and `false`, IP addresses without a prefix length), so that CSV and JSON
/// carry the same; a list (`reported_domains`) is its items separated by spaces. The terminal
/// table shows fewer columns, in words.
fn every_column(rows: &[ForensicRow]) -> Result<Table> {
    let columns: Vec<&str> = forensic::ROW_COLUMNS.split(',').map(str::trim).collect();
    let mut table = Table::new(columns.iter().copied());
    for row in rows {
        let value = serde_json::to_value(row)?;
        table.push(columns.iter().map(|column| cell(&value[column])).collect());
    }
    Ok(table)
}

/// A JSON value as a table cell.
fn cell(value: &serde_json::Value) -> Cell {
    match value {
        serde_json::Value::Null => Cell::Null,
        serde_json::Value::String(text) => Cell::from(text.as_str()),
        serde_json::Value::Number(number) => number.as_i64().map_or_else(|| Cell::from(number.to_string()), Cell::from),
        serde_json::Value::Array(items) => {
            let items: Vec<String> =
                items.iter().map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_owned)).collect();
            Cell::from(items.join(" "))
        }
        other => Cell::from(other.to_string()),
    }
}

fn table(rows: &[ForensicRow]) -> Table {
    let mut table = Table::titled([
        ("id", "id"),
        ("arrival_date", "arrival"),
        ("source_ip", "source"),
        ("reported_domain", "domain"),
        ("feedback_type", "type"),
        ("auth_failure", "failure"),
        ("delivery_result", "delivery"),
        ("reporting_mta", "reporter"),
        ("original_mail_from", "mail from"),
        ("sample_kept", "sample"),
    ]);
    for row in rows {
        table.push(vec![
            Cell::from(row.id),
            row.arrival_date.map(time).into(),
            row.source_ip.map(|ip| ip.ip().to_string()).into(),
            row.reported_domain.clone().into(),
            Cell::from(row.feedback_type.clone()),
            row.auth_failure.clone().into(),
            row.delivery_result.clone().into(),
            row.reporting_mta.clone().into(),
            row.original_mail_from.clone().into(),
            Cell::from(if row.sample_kept { "sealed" } else { "not kept" }),
        ]);
    }
    table
}

async fn show(config: &FileConfig, database_url: Option<&str>, args: ForensicShowArgs) -> Result<u8> {
    // The identity first: a wrong path should not wait for the database.
    let opener = Opener::from_file(&args.identity)?;
    let store = connect(config, database_url, 2).await?;
    let Some((row, sealed)) = forensic::find(store.pool(), args.id).await.context("cannot read the report")? else {
        bail!("no failure report with id {}", args.id);
    };
    let Some(sealed) = sealed else {
        bail!(
            "failure report {} has no sample: it arrived while no age recipient was configured, so only its clear \
             fields were stored (dmarc_forensic)",
            args.id
        );
    };
    let raw = opener.open(&sealed).with_context(|| format!("cannot open the sample of failure report {}", args.id))?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        out.write_all(&raw)?;
        return Ok(exit::OK);
    }
    let sample = Sample::from_report_mail(&raw);
    writeln!(out, "{}", summary(&row))?;
    writeln!(out)?;
    write!(out, "{}", ensure_newline(&sample.headers))?;
    if args.body {
        match &sample.body {
            Some(body) => {
                writeln!(out)?;
                write!(out, "{}", ensure_newline(body))?;
            }
            None => writeln!(out, "\n(the report carries the original's headers only)")?,
        }
        if let Some(description) = &sample.description {
            writeln!(out, "\n--- report text ---")?;
            write!(out, "{}", ensure_newline(description))?;
        }
    }
    Ok(exit::OK)
}

/// `# failure report 7: auth-failure (dmarc) for example.com from 192.0.2.1, arrived ...`
fn summary(row: &ForensicRow) -> String {
    let mut line = format!("# failure report {}: {}", row.id, row.feedback_type);
    if let Some(failure) = &row.auth_failure {
        line.push_str(&format!(" ({failure})"));
    }
    if let Some(domain) = &row.reported_domain {
        line.push_str(&format!(" for {domain}"));
    }
    if let Some(ip) = &row.source_ip {
        line.push_str(&format!(" from {}", ip.ip()));
    }
    if let Some(arrival) = row.arrival_date {
        line.push_str(&format!(", arrived {}", time(arrival)));
    }
    if let Some(mta) = &row.reporting_mta {
        line.push_str(&format!(", reported by {mta}"));
    }
    line
}

fn ensure_newline(text: &str) -> String {
    if text.ends_with('\n') { text.to_owned() } else { format!("{text}\n") }
}
