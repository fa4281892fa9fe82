//! `dmarcpipe report --by KEY`: rollups of aggregate reports as a table, CSV or JSON.

use std::io::Write;

use anyhow::{Context, Result, bail};
use chrono::{Duration, NaiveDate, Utc};
use dmarcpipe_render::{Cell, Format, Table};
use dmarcpipe_store::rollup::{self, RollupFilter, RollupKey};

use super::connect;
use crate::cli::{OutputFormat, ReportArgs, RollupBy};
use crate::config::FileConfig;
use crate::exit;

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: ReportArgs) -> Result<u8> {
    let today = Utc::now().date_naive();
    let filter = RollupFilter {
        domain: args.domain.clone(),
        since: args.since.as_deref().map(|text| parse_day(text, today)).transpose().context("--since")?,
        until: args.until.as_deref().map(|text| parse_day(text, today)).transpose().context("--until")?,
    };
    let store = connect(config, database_url, 2).await?;
    store.refresh_rollups().await.context("cannot refresh the rollups")?;
    let key = match args.by {
        RollupBy::Result => RollupKey::Result,
        RollupBy::Source => RollupKey::Source,
        RollupBy::Org => RollupKey::Org,
        RollupBy::Domain => RollupKey::Domain,
        RollupBy::Day => RollupKey::Day,
    };
    let rows = rollup::query(store.pool(), key, &filter).await.context("cannot query the rollups")?;
    let mut table = Table::titled([
        (key.name(), key.name()),
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
    for row in rows {
        table.push(vec![
            Cell::from(row.key),
            row.messages.into(),
            row.dmarc_pass.into(),
            row.dmarc_fail.into(),
            row.disposition_none.into(),
            row.disposition_quarantine.into(),
            row.disposition_reject.into(),
            row.dkim_aligned.into(),
            row.spf_aligned.into(),
            row.records.into(),
        ]);
    }
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Csv => Format::Csv,
        OutputFormat::Json => Format::Json,
    };
    let text = dmarcpipe_render::render(&table, format);
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    Ok(exit::OK)
}

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
        bail!("`{text}` is not a day (2026-11-01, 30d, 2w, today)");
    };
    let days = match unit {
        "d" | "day" | "days" => number,
        "w" | "week" | "weeks" => number * 7,
        "h" | "hours" => number.div_euclid(24),
        _ => bail!("`{text}` is not a day (2026-11-01, 30d, 2w, today)"),
    };
    Ok(today - Duration::days(days))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_absolute_relative_and_named() -> Result<()> {
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).context("a date")?;
        assert_eq!(parse_day("2026-11-01", today)?, NaiveDate::from_ymd_opt(2026, 11, 1).context("a date")?);
        assert_eq!(parse_day("30d", today)?, NaiveDate::from_ymd_opt(2026, 10, 29).context("a date")?);
        assert_eq!(parse_day("2w", today)?, NaiveDate::from_ymd_opt(2026, 11, 14).context("a date")?);
        assert_eq!(parse_day("yesterday", today)?, NaiveDate::from_ymd_opt(2026, 11, 27).context("a date")?);
        assert!(parse_day("soon", today).is_err());
        assert!(parse_day("5y", today).is_err());
        Ok(())
    }
}
