//! `make bench`: generates a deterministic corpus of aggregate reports, imports it into a fresh
//! database with the release binary, and prints reports/s, records/s and peak RSS.
//!
//! ```text
//! dmarcpipe-bench generate DIR [--files N] [--large-records N]
//! dmarcpipe-bench run --binary target/release/dmarcpipe --corpus DIR [--only PHASE,...]
//! dmarcpipe-bench compare --corpus DIR --parsedmarc PATH [--rounds N]
//! dmarcpipe-bench smtp --binary target/release/dmarcpipe [--messages N] [--clients C]
//! dmarcpipe-bench imap --binary target/release/dmarcpipe [--messages N]
//! dmarcpipe-bench ptr [--lookups N]
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
//! The phases of `run` (`--only`, `BENCH_ONLY` in the Makefile): `fixed`, the cost of one
//! `import` of an empty directory and of `import -` of one small report over TCP and the Unix
//! socket (`fixed.rs`); `files`, the 2,000 files, with the share of the cores left idle;
//! `large`, the million-record report as gzip and as plain XML; `memory`, the inputs shaped to
//! make memory grow (`memory.rs`); `arf`, 2,000 failure reports sealed and stored (`arf.rs`);
//! `views`, every rollup key and the visual report over 10 million generated records (the
//! `rollups` and `report` runs below on data generated once, about five minutes).
//! Every `dmarcpipe` run has `DMARCPIPE_NO_ENRICH=1`: enrichment runs apart from storing.
//! `compare` (`make bench-compare`) runs parsedmarc and dmarcpipe side by side: `compare.rs`.
//!
//! `rollups` (`make bench-rollups`) times every rollup key over 10 million generated records:
//! see `rollups.rs`; `report` (`make bench-report`) times the visual report over the same data:
//! see `report.rs`. Both generate into a fresh database, dropped at the end; with `--keep` it
//! is kept, and `--database NAME` measures such a kept database again without generating.
//!
//! `enrich` (`make bench-enrich`) times `dmarcpipe enrich` over 100,000 new source addresses
//! with geolocation databases and without DNS: see `enrich.rs`. The other runs set
//! `DMARCPIPE_NO_ENRICH=1`, so that they measure ingestion only.
//!
//! `smtp` (`make bench-smtp`) measures `dmarcpipe serve` instead: see `smtp.rs`; `imap`
//! (`make bench-imap`) measures `dmarcpipe fetch` against a real Dovecot: see `imap.rs`.
//! `ptr` (`make bench-ptr`) measures reverse DNS lookups against a local Unbound: see `ptr.rs`.

mod arf;
mod compare;
mod enrich;
mod fixed;
mod imap;
mod memory;
mod ptr;
mod report;
mod rollups;
mod smtp;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// Where `rollups` and `report` measure: a fresh database they generate the data into, dropped
/// at the end unless `--keep` is given, or the database of an earlier run kept that way
/// (`--database NAME`, on the server of `DATABASE_URL`), brought to the binary's schema and
/// measured as it is, without generating again.
#[derive(Debug, Clone)]
pub(crate) struct GeneratedData {
    pub admin: String,
    pub database: String,
    pub url: String,
    /// Whether the data is to be generated (a fresh database).
    pub fresh: bool,
    keep: bool,
}

impl GeneratedData {
    fn open(binary: &Path, purpose: &str, existing: Option<String>, keep: bool) -> Result<GeneratedData> {
        let Some(database) = existing else {
            let (admin, database, url) = create_database(binary, purpose)?;
            return Ok(GeneratedData { admin, database, url, fresh: true, keep });
        };
        if !database.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("--database {database}: a plain database name is expected");
        }
        let admin = std::env::var("DATABASE_URL").context("DATABASE_URL must name the PostgreSQL server to measure")?;
        let url = with_database(&admin, &database);
        let migrated = Command::new(binary).env("DATABASE_URL", &url).arg("migrate").output()?;
        if !migrated.status.success() {
            bail!("migrate of {database} failed: {}", String::from_utf8_lossy(&migrated.stderr));
        }
        Ok(GeneratedData { admin, database, url, fresh: false, keep: true })
    }

    /// Drops a fresh database, or says where the kept one is.
    fn close(self) -> Result<()> {
        if self.keep {
            println!("the data is kept in the database {} (measure it again with --database {0})", self.database);
            return Ok(());
        }
        drop_database(&self.admin, &self.database)
    }
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
    forensic: u64,
    records: u64,
    seconds: f64,
    peak_rss: u64,
}

/// What `dmarcpipe import` is told besides its path.
#[derive(Default, Clone, Copy)]
struct ImportOptions<'a> {
    jobs: Option<u32>,
    config: Option<&'a Path>,
}

/// A `dmarcpipe` command as every phase runs it: enrichment off (it runs apart from storing,
/// and the benchmark measures storing).
fn dmarcpipe(binary: &Path, url: &str) -> Command {
    let mut command = Command::new(binary);
    command.env("DATABASE_URL", url).env("DMARCPIPE_NO_ENRICH", "1");
    command
}

fn import(binary: &Path, url: &str, path: &Path, options: ImportOptions<'_>) -> Result<Measured> {
    let mut command = dmarcpipe(binary, url);
    if let Some(config) = options.config {
        command.arg("--config").arg(config);
    }
    command.args(["import", "--json", "--quiet"]).arg(path);
    if let Some(jobs) = options.jobs {
        command.args(["--jobs", &jobs.to_string()]);
    }
    let started = Instant::now();
    let output = command.stdin(Stdio::null()).output().context("running dmarcpipe import")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("import failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).context("import summary")?;
    let field = |name: &str| summary[name].as_u64().unwrap_or(0);
    if field("rejected") + field("failed") + field("unreadable") > 0 {
        bail!("import rejected inputs: {summary}");
    }
    Ok(Measured {
        reports: field("reports"),
        forensic: field("forensic"),
        records: field("records"),
        seconds,
        peak_rss: field("peak_rss_bytes"),
    })
}

/// CPU time of the whole machine from `/proc/stat` (ticks): how much of it was idle.
#[derive(Clone, Copy)]
struct CpuTicks {
    idle: u64,
    total: u64,
}

impl CpuTicks {
    fn now() -> CpuTicks {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal (guest time is inside user).
        let total = fields.iter().take(8).sum();
        let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
        CpuTicks { idle, total }
    }

    /// The share of the cores' time that was idle (or waiting for the disk) since `self`.
    fn idle_share_since(self) -> f64 {
        let now = CpuTicks::now();
        let total = now.total.saturating_sub(self.total).max(1);
        now.idle.saturating_sub(self.idle) as f64 / total as f64
    }
}

/// The phases of `run`, as `--only` (`BENCH_ONLY`) names them.
const PHASES: &[&str] = &["fixed", "files", "large", "memory", "arf", "views"];

fn run(binary: &Path, corpus: &Path, jobs: Option<u32>, only: &[String]) -> Result<()> {
    for phase in only {
        if !PHASES.contains(&phase.as_str()) {
            bail!("unknown phase {phase:?} in --only (BENCH_ONLY): the phases are {}", PHASES.join(","));
        }
    }
    let wanted = |phase: &str| only.is_empty() || only.iter().any(|p| p == phase);
    let uptime = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "dmarcpipe-bench: {} cores, load average {} (other work on the machine disturbs every figure)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        uptime.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    if wanted("fixed") {
        fixed::run(binary, corpus)?;
    }
    if wanted("files") {
        files(binary, corpus, jobs)?;
    }
    if wanted("large") {
        large(binary, corpus)?;
    }
    if wanted("memory") {
        memory::run(binary, corpus)?;
    }
    if wanted("arf") {
        arf::run(binary, corpus)?;
    }
    if wanted("views") {
        views(binary)?;
    }
    Ok(())
}

/// Every rollup key and the visual report over 10 million generated records from 100,000
/// sources (`make bench-rollups` and `make bench-report` in one, on data generated once).
fn views(binary: &Path) -> Result<()> {
    const RECORDS: u64 = 10_000_000;
    const IPS: u64 = 100_000;
    let data = GeneratedData::open(binary, "views", None, false)?;
    let result = rollups::run(binary, &data, RECORDS, IPS).and_then(|()| {
        // The data is there now, compacted by the rollups' first report.
        let generated = GeneratedData { fresh: false, keep: false, ..data.clone() };
        report::run(binary, &generated, RECORDS, IPS)
    });
    data.close()?;
    result
}

const MB: f64 = (1 << 20) as f64;

fn print_header() {
    println!();
    println!(
        "{:<40} {:>8} {:>10} {:>8} {:>11} {:>11} {:>9} {:>6}",
        "phase", "reports", "records", "seconds", "reports/s", "records/s", "peak RSS", "idle"
    );
}

fn print_line(name: &str, m: &Measured, idle: Option<f64>) {
    println!(
        "{name:<40} {:>8} {:>10} {:>8.2} {:>11.0} {:>11.0} {:>6.0} MB {:>6}",
        m.reports,
        m.records,
        m.seconds,
        m.reports as f64 / m.seconds,
        m.records as f64 / m.seconds,
        m.peak_rss as f64 / MB,
        idle.map_or_else(|| "-".to_owned(), |idle| format!("{:.0} %", idle * 100.0))
    );
}

/// The 2,000 files: small reports, then the 2,000-3,000-record ones, then the small ones again
/// (all duplicates), each with the share of the cores left idle (from `/proc/stat`).
fn files(binary: &Path, corpus: &Path, jobs: Option<u32>) -> Result<()> {
    let (admin, database, url) = create_database(binary, "import")?;
    let options = ImportOptions { jobs, config: None };
    let timed = |dir: &str| -> Result<(Measured, f64)> {
        let ticks = CpuTicks::now();
        let measured = import(binary, &url, &corpus.join(dir), options)?;
        Ok((measured, ticks.idle_share_since()))
    };
    let result = (|| -> Result<()> {
        let (small, small_idle) = timed("small")?;
        let (medium, medium_idle) = timed("medium")?;
        let (again, again_idle) = timed("small")?;
        let files = Measured {
            reports: small.reports + medium.reports,
            forensic: 0,
            records: small.records + medium.records,
            seconds: small.seconds + medium.seconds,
            peak_rss: small.peak_rss.max(medium.peak_rss),
        };
        print_header();
        print_line("small reports (1-5 records)", &small, Some(small_idle));
        print_line("large reports (2,000-3,000 records)", &medium, Some(medium_idle));
        print_line("all 2,000 files (the two lines above)", &files, None);
        print_line("the small ones again (all duplicates)", &again, Some(again_idle));
        println!(
            "(wall-clock time of each `dmarcpipe import` run end to end into PostgreSQL, final flush included; \
             idle: share of both cores' time left idle during the run, from /proc/stat; the duplicates run took \
             {:.0} inputs/s)",
            (small.reports as f64) / again.seconds
        );
        Ok(())
    })();
    drop_database(&admin, &database)?;
    result
}

/// The million-record report, gzip and plain, each into a fresh database.
fn large(binary: &Path, corpus: &Path) -> Result<()> {
    let gzipped = corpus.join("large");
    let plain = corpus.join("large-plain");
    if !plain.join("report-large.xml").exists() {
        fs::create_dir_all(&plain)?;
        let partial = plain.join("report-large.xml.partial");
        let status = Command::new("gzip")
            .arg("-dc")
            .arg(gzipped.join("report-large.xml.gz"))
            .stdout(fs::File::create(&partial)?)
            .status()
            .context("running gzip -dc")?;
        if !status.success() {
            bail!("gzip -dc of the large report failed ({status})");
        }
        fs::rename(&partial, plain.join("report-large.xml"))?;
    }
    print_header();
    for (name, dir) in [("one report of 1,000,000 records (gzip)", &gzipped), ("the same as plain XML", &plain)] {
        let (admin, database, url) = create_database(binary, "large")?;
        let ticks = CpuTicks::now();
        let measured = import(binary, &url, dir, ImportOptions::default());
        let idle = ticks.idle_share_since();
        drop_database(&admin, &database)?;
        print_line(name, &measured?, Some(idle));
    }
    Ok(())
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
            let only: Vec<String> = flag("--only")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|phase| !phase.is_empty() && *phase != "all")
                .map(str::to_owned)
                .collect();
            run(&binary, &corpus, jobs, &only)
        }
        Some("compare") => {
            let binary = PathBuf::from(flag("--binary").unwrap_or_else(|| "target/release/dmarcpipe".into()));
            let corpus = PathBuf::from(flag("--corpus").context("compare --corpus DIR")?);
            let parsedmarc = PathBuf::from(flag("--parsedmarc").context("compare --parsedmarc PATH")?);
            let rounds = flag("--rounds").map(|v| v.parse()).transpose()?.unwrap_or(3);
            compare::run(&binary, &parsedmarc, &corpus, rounds)
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
        Some("enrich") => {
            let binary = PathBuf::from(flag("--binary").unwrap_or_else(|| "target/release/dmarcpipe".into()));
            let ips = flag("--ips").map(|v| v.parse()).transpose()?.unwrap_or(100_000);
            enrich::run(&binary, ips)
        }
        Some("rollups") => {
            let binary = PathBuf::from(flag("--binary").unwrap_or_else(|| "target/release/dmarcpipe".into()));
            let records = flag("--records").map(|v| v.parse()).transpose()?.unwrap_or(10_000_000);
            let ips = flag("--ips").map(|v| v.parse()).transpose()?.unwrap_or(100_000);
            let data = GeneratedData::open(&binary, "rollups", flag("--database"), args.iter().any(|a| a == "--keep"))?;
            let result = rollups::run(&binary, &data, records, ips);
            data.close()?;
            result
        }
        Some("report") => {
            let binary = PathBuf::from(flag("--binary").unwrap_or_else(|| "target/release/dmarcpipe".into()));
            let records = flag("--records").map(|v| v.parse()).transpose()?.unwrap_or(10_000_000);
            let ips = flag("--ips").map(|v| v.parse()).transpose()?.unwrap_or(100_000);
            let data = GeneratedData::open(&binary, "report", flag("--database"), args.iter().any(|a| a == "--keep"))?;
            let result = report::run(&binary, &data, records, ips);
            data.close()?;
            result
        }
        Some("ptr") => ptr::run(flag("--lookups").map(|v| v.parse()).transpose()?.unwrap_or(20_000)),
        _ => bail!(
            "usage: dmarcpipe-bench generate DIR [--files N] [--large-records N] \
             | run --corpus DIR [--binary PATH] [--jobs N] [--only fixed,files,large,memory,arf] \
             | compare --corpus DIR --parsedmarc PATH [--binary PATH] [--rounds N] \
             | smtp [--binary PATH] [--messages N] [--clients C] | imap [--binary PATH] [--messages N] \
             | rollups|report [--binary PATH] [--records N] [--ips N] [--keep | --database NAME] | enrich [--binary PATH] [--ips N] | ptr [--lookups N]"
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
