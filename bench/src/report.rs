//! `make bench-report`: `dmarcpipe report --format html` over the generated data of
//! `make bench-rollups` (see `rollups.rs`: a year of reports, 10 million records by default,
//! 100,000 sources with `source_ips` filled as enrichment would).
//!
//! After generating, one `report --by domain` compacts the rollups (as the first report of a
//! day does); then the visual report is timed end to end (release binary, written to
//! /dev/null, median of five runs) over all data, with --domain, and over the last month. The
//! target of issue 14 is 2 s over 10 million records.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::rollups::{generate_records, generate_sources};
use crate::{GeneratedData, psql, psql_value};

const FILTERS: [(&str, &[&str]); 3] =
    [("all data", &[]), ("--domain", &["--domain", "example2.com"]), ("--since 30d", &["--since", "2026-11-01"])];

const RUNS: usize = 5;

/// Seconds of one `dmarcpipe report` run with these arguments (the rollups' runs too).
pub(crate) fn timed(binary: &Path, url: &str, args: &[&str]) -> Result<f64> {
    let started = Instant::now();
    let output = Command::new(binary)
        .env("DATABASE_URL", url)
        .arg("report")
        .args(args)
        .output()
        .context("running dmarcpipe report")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("report {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(seconds)
}

pub(crate) fn run(binary: &Path, data: &GeneratedData, records: u64, ips: u64) -> Result<()> {
    let url = &data.url;
    if data.fresh {
        let started = Instant::now();
        psql(url, &generate_records(records, ips))?;
        psql(url, &generate_sources(ips))?;
        psql(url, "VACUUM ANALYZE")?;
        println!(
            "generated {} records from {} sources in {:.0} s",
            psql_value(url, "SELECT count(*) FROM aggregate_records")?,
            psql_value(url, "SELECT count(*) FROM source_ips")?,
            started.elapsed().as_secs_f64()
        );
    }
    let records = psql_value(url, "SELECT count(*) FROM aggregate_records")?;
    let seconds = timed(binary, url, &["--by", "domain", "--format", "csv", "--output", "/dev/null"])?;
    println!("the first report compacts: {seconds:.1} s");
    let mut slowest: f64 = 0.0;
    for (name, filter) in FILTERS {
        let mut args = vec!["--format", "html", "--output", "/dev/null"];
        args.extend_from_slice(filter);
        let mut times = (0..RUNS).map(|_| timed(binary, url, &args)).collect::<Result<Vec<f64>>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[RUNS / 2];
        slowest = slowest.max(median);
        println!(
            "report --format html ({name}): {:.0} ms median of {RUNS} (best {:.0} ms, worst {:.0} ms)",
            median * 1000.0,
            times[0] * 1000.0,
            times[RUNS - 1] * 1000.0
        );
    }
    println!(
        "slowest: {:.2} s over {records} records (target: 2 s over 10 million): {}",
        slowest,
        if slowest <= 2.0 { "met" } else { "missed" }
    );
    Ok(())
}
