//! `make bench`: generates a deterministic corpus of aggregate reports, imports it into a fresh
//! database with the release binary, and prints reports/s, records/s and peak RSS.
//!
//! ```text
//! dmarcpipe-bench generate DIR [--files N] [--large-records N]
//! dmarcpipe-bench run --binary target/release/dmarcpipe --corpus DIR
//! dmarcpipe-bench smtp --binary target/release/dmarcpipe [--messages N] [--clients C]
//! dmarcpipe-bench imap --binary target/release/dmarcpipe [--messages N]
//! ```
//!
//! The corpus: N files (default 2,000) mixing 1-5-record reports (`small/`) with about 1 % of
//! reports of 2,000-3,000 records (`medium/`), as plain XML, gzip, zip and mail with a gzip
//! attachment; `large/`, one gzip report of a million records; and `memory/`, inputs shaped to
//! make memory grow (see `memory.rs`). The run imports each directory into the same fresh
//! database and reports each phase and the 2,000 files together, then the memory phases, each
//! input alone, and `serve` receiving several of them at once. Sources come from the benchmarking
//! range 198.18.0.0/15 (RFC 2544) and 2001:db8::/32, domains from example.com/net/org.
//! Everything is derived from a fixed seed, so two runs measure the same bytes.
//!
//! `smtp` (`make bench-smtp`) measures `dmarcpipe serve` instead: see `smtp.rs`; `imap`
//! (`make bench-imap`) measures `dmarcpipe fetch` against a real Dovecot: see `imap.rs`.

mod imap;
mod memory;
mod smtp;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng, gzip, mail_with_attachment, zip};

const DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];
const REPORTERS: &[&str] = &["google.example", "Outlook.example", "yahoo.example", "mail.ru.example", "gmx.example"];
const FIRST_DAY: u64 = 1_791_072_000; // 2026-10-04

/// One report of `records` records, on a day and from a reporter drawn from `rng`.
fn report(rng: &mut Rng, serial: u64, records: u64) -> ReportBuilder {
    let org = REPORTERS[rng.below(REPORTERS.len() as u64) as usize];
    let domain = DOMAINS[rng.below(DOMAINS.len() as u64) as usize];
    let begin = FIRST_DAY + 86_400 * rng.below(56);
    ReportBuilder::new(org, &format!("bench-{serial}"), domain, begin).random_records(records, rng)
}

fn generate(dir: &Path, files: u64, large_records: u64) -> Result<()> {
    let small = dir.join("small");
    let medium = dir.join("medium");
    let large = dir.join("large");
    for sub in [&small, &medium, &large] {
        fs::create_dir_all(sub)?;
    }
    let mut rng = Rng(0x00D3_A5C0_FFEE_1234);
    let (mut small_tally, mut medium_tally) = ((0u64, 0u64), (0u64, 0u64));
    for serial in 0..files {
        // About 1 % of the files are big reports (Google-sized), the rest 1-5 records.
        let big = serial % 97 == 13;
        let count = if big { 2_000 + rng.below(1_000) } else { 1 + rng.below(5) };
        let report = report(&mut rng, serial, count);
        let (stem, xml) = (report.file_stem(), report.xml());
        let tally = if big { &mut medium_tally } else { &mut small_tally };
        tally.0 += 1;
        tally.1 += count;
        let path = if big { &medium } else { &small }.join(format!("{serial:05}"));
        match serial % 20 {
            0..=7 => fs::write(path.with_extension("xml.gz"), gzip(xml.as_bytes()))?,
            8..=12 => fs::write(path.with_extension("xml"), &xml)?,
            13..=15 => fs::write(path.with_extension("zip"), zip(&[(&format!("{stem}.xml"), xml.as_bytes())]))?,
            _ => {
                let subject = format!(
                    "Report Domain: {} Submitter: {} Report-ID: <bench-{serial}>",
                    report.domain, report.org_name
                );
                let mail = mail_with_attachment(
                    &subject,
                    &format!("{stem}.xml.gz"),
                    "application/gzip",
                    &gzip(xml.as_bytes()),
                );
                fs::write(path.with_extension("eml"), mail)?
            }
        }
    }
    let xml = report(&mut rng, 1_000_000_000, large_records).xml();
    fs::write(large.join("report-large.xml.gz"), gzip(xml.as_bytes()))?;
    let manifest = serde_json::json!({
        "small": { "files": small_tally.0, "records": small_tally.1 },
        "medium": { "files": medium_tally.0, "records": medium_tally.1 },
        "large": { "files": 1, "records": large_records, "xml_bytes": xml.len() },
    });
    memory::generate(&dir.join("memory"))?;
    fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&manifest)?)?;
    println!(
        "generated {} small and {} large report files ({} records), and one report of {large_records} records \
         ({} MB of XML) in {}",
        small_tally.0,
        medium_tally.0,
        small_tally.1 + medium_tally.1,
        xml.len() >> 20,
        dir.display()
    );
    Ok(())
}

/// The single value a query returns, as text.
fn psql_value(url: &str, sql: &str) -> Result<String> {
    let output = Command::new("psql").arg(url).args(["-v", "ON_ERROR_STOP=1", "-qtA", "-c", sql]).output()?;
    if !output.status.success() {
        bail!("psql failed: {sql}: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// A fresh database with the schema applied: (admin URL, its name, its URL).
fn create_database(binary: &Path, purpose: &str) -> Result<(String, String, String)> {
    let admin = std::env::var("DATABASE_URL").context("DATABASE_URL must name the PostgreSQL server to measure")?;
    let database = format!("dmarcpipe_bench_{purpose}_{}", std::process::id());
    psql(&admin, &format!("CREATE DATABASE {database}"))?;
    let url = with_database(&admin, &database);
    // Migrations first, so that what follows measures only the work.
    let migrated = Command::new(binary).env("DATABASE_URL", &url).arg("migrate").output()?;
    if !migrated.status.success() {
        drop_database(&admin, &database)?;
        bail!("migrate failed: {}", String::from_utf8_lossy(&migrated.stderr));
    }
    Ok((admin, database, url))
}

fn drop_database(admin: &str, database: &str) -> Result<()> {
    psql(admin, &format!("DROP DATABASE {database} WITH (FORCE)"))
}

fn psql(url: &str, sql: &str) -> Result<()> {
    psql_value(url, sql).map(drop)
}

/// The URL of another database on the same server.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let prefix = match base.rfind('/') {
        Some(slash) if slash > base.find("//").map_or(0, |s| s + 1) => &base[..slash],
        _ => base,
    };
    match query {
        Some(query) => format!("{prefix}/{database}?{query}"),
        None => format!("{prefix}/{database}"),
    }
}

struct Measured {
    reports: u64,
    records: u64,
    seconds: f64,
    peak_rss: u64,
}

fn import(binary: &Path, url: &str, path: &Path, jobs: Option<u32>) -> Result<Measured> {
    let mut command = Command::new(binary);
    command.env("DATABASE_URL", url).args(["import", "--json", "--quiet"]).arg(path);
    if let Some(jobs) = jobs {
        command.args(["--jobs", &jobs.to_string()]);
    }
    let started = Instant::now();
    let output = command.output().context("running dmarcpipe import")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("import failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).context("import summary")?;
    let field = |name: &str| summary[name].as_u64().unwrap_or(0);
    if field("rejected") + field("failed") + field("unreadable") > 0 {
        bail!("import rejected inputs: {summary}");
    }
    Ok(Measured { reports: field("reports"), records: field("records"), seconds, peak_rss: field("peak_rss_bytes") })
}

fn run(binary: &Path, corpus: &Path, jobs: Option<u32>) -> Result<()> {
    let (admin, database, url) = create_database(binary, "import")?;
    let result = (|| -> Result<()> {
        let small = import(binary, &url, &corpus.join("small"), jobs)?;
        let medium = import(binary, &url, &corpus.join("medium"), jobs)?;
        let again = import(binary, &url, &corpus.join("small"), jobs)?;
        let large = import(binary, &url, &corpus.join("large"), jobs)?;
        let files = Measured {
            reports: small.reports + medium.reports,
            records: small.records + medium.records,
            seconds: small.seconds + medium.seconds,
            peak_rss: small.peak_rss.max(medium.peak_rss),
        };
        let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        println!();
        println!(
            "{:<40} {:>8} {:>10} {:>8} {:>11} {:>11} {:>9}",
            "phase", "reports", "records", "seconds", "reports/s", "records/s", "peak RSS"
        );
        for (name, m) in [
            ("small reports (1-5 records)", &small),
            ("large reports (2,000-3,000 records)", &medium),
            ("all 2,000 files (the two lines above)", &files),
            ("the small ones again (all duplicates)", &again),
            ("one report of 1,000,000 records", &large),
        ] {
            println!(
                "{name:<40} {:>8} {:>10} {:>8.2} {:>11.0} {:>11.0} {:>6.0} MB",
                m.reports,
                m.records,
                m.seconds,
                if name.contains("again") { 0.0 } else { m.reports as f64 / m.seconds },
                m.records as f64 / m.seconds,
                mb(m.peak_rss)
            );
        }
        println!(
            "\n(wall-clock time of each `dmarcpipe import` run end to end into PostgreSQL, rollup refresh and final \
             flush included; the duplicates run took {:.0} inputs/s)",
            (small.reports as f64) / again.seconds
        );
        Ok(())
    })();
    drop_database(&admin, &database)?;
    result?;
    memory::run(binary, corpus)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    match args.first().map(String::as_str) {
        Some("generate") => {
            let dir = PathBuf::from(args.get(1).context("generate DIR")?);
            let files = flag("--files").map(|v| v.parse()).transpose()?.unwrap_or(2_000);
            let large = flag("--large-records").map(|v| v.parse()).transpose()?.unwrap_or(1_000_000);
            generate(&dir, files, large)
        }
        Some("run") => {
            let binary = PathBuf::from(flag("--binary").unwrap_or_else(|| "target/release/dmarcpipe".into()));
            let corpus = PathBuf::from(flag("--corpus").context("run --corpus DIR")?);
            let jobs = flag("--jobs").map(|v| v.parse()).transpose()?;
            run(&binary, &corpus, jobs)
        }
        Some("smtp") => {
            let binary = PathBuf::from(flag("--binary").unwrap_or_else(|| "target/release/dmarcpipe".into()));
            let messages = flag("--messages").map(|v| v.parse()).transpose()?.unwrap_or(5_000);
            let clients = flag("--clients").map(|v| v.parse()).transpose()?.unwrap_or(50);
            smtp::run(&binary, messages, clients)
        }
        Some("imap") => {
            let binary = PathBuf::from(flag("--binary").unwrap_or_else(|| "target/release/dmarcpipe".into()));
            let messages = flag("--messages").map(|v| v.parse()).transpose()?.unwrap_or(2_000);
            imap::run(&binary, messages)
        }
        _ => bail!(
            "usage: dmarcpipe-bench generate DIR [--files N] [--large-records N] | run --corpus DIR [--binary PATH] [--jobs N] \
             | smtp [--binary PATH] [--messages N] [--clients C] | imap [--binary PATH] [--messages N]"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_are_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://u@h:5432/db?sslmode=disable", "x"),
            "postgres://u@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h/db", "x"), "postgres://u@h/x");
        assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
