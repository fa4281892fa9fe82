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
use super::report::parse_day;
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
    let today = Utc::now().date_naive();
    let day = |text: &Option<String>, flag: &str| -> Result<_> {
        text.as_deref()
            .map(|text| parse_day(text, today))
            .transpose()
            .context(flag.to_owned())
            .map(|day| day.and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()))
    };
    let filter = ForensicFilter {
        domain: args.domain.clone(),
        since: day(&args.since, "--since")?,
        until: day(&args.until, "--until")?,
        limit: args.limit,
    };
    let store = connect(config, database_url, 2).await?;
    let rows = forensic::list(store.pool(), &filter).await.context("cannot list failure reports")?;
    let text = match args.format {
        OutputFormat::Json => format!("{}\n", serde_json::to_string_pretty(&rows)?),
        OutputFormat::Table => dmarcpipe_render::render(&table(&rows), Format::Table),
        OutputFormat::Csv => dmarcpipe_render::render(&table(&rows), Format::Csv),
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(exit::OK)
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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
