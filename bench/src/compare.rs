//! `make bench-compare`: parsedmarc and dmarcpipe side by side on the same generated files.
//!
//! Two workloads from the `make bench` corpus: the small reports (`small/`, 1-5 records, as
//! XML, gzip, zip and mail), and a mixed set (`mixed/`, made here of hard links: the first 380
//! small files and the 21 reports of 2,000-3,000 records). Each round runs both tools on each
//! workload, alternating which goes first; `--rounds` rounds.
//!
//! - parsedmarc (`--offline -s`, the directory as its argument): parses every file, no DNS, no
//!   geolocation lookups on the network, no output (`-s`; stdout to /dev/null). Parse only.
//! - dmarcpipe (`import --json --quiet`, `DMARCPIPE_NO_ENRICH=1`): parses and stores everything
//!   into a fresh PostgreSQL database on the local server, each commit flushed before it exits.
//!
//! Wall time is taken from spawn to exit; peak RSS is the child's (`/usr/bin/time -f %M`, from
//! wait4). Records are those dmarcpipe stored (the same files for both).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{create_database, dmarcpipe, drop_database};

/// Small files in the mixed set, beside every large one.
const MIXED_SMALL: usize = 380;

/// One timed run of one tool.
#[derive(Debug, Clone, Copy)]
struct Run {
    seconds: f64,
    peak_rss: u64,
}

/// Runs `command` under `/usr/bin/time -f %M` (peak RSS in KiB, from wait4).
fn timed(command: &Command) -> Result<Run> {
    let rss_file = std::env::temp_dir().join(format!("dmarcpipe-bench-compare-{}.rss", std::process::id()));
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped.arg("-f").arg("%M").arg("-o").arg(&rss_file).arg(command.get_program()).args(command.get_args());
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    let started = Instant::now();
    let output =
        wrapped.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).output().with_context(|| {
            format!("running {} under /usr/bin/time (Debian package `time`)", command.get_program().to_string_lossy())
        })?;
    let seconds = started.elapsed().as_secs_f64();
    let rss = fs::read_to_string(&rss_file).unwrap_or_default();
    let _ = fs::remove_file(&rss_file);
    if !output.status.success() {
        bail!(
            "{} failed ({}): {}",
            command.get_program().to_string_lossy(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let kib: u64 = rss.lines().last().unwrap_or_default().trim().parse().context("peak RSS from /usr/bin/time")?;
    Ok(Run { seconds, peak_rss: kib * 1024 })
}

/// The mixed set: hard links to the first small files and every large one.
fn mixed(corpus: &Path) -> Result<PathBuf> {
    let dir = corpus.join("mixed");
    if dir.exists() {
        return Ok(dir);
    }
    let partial = corpus.join("mixed.partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    let sorted = |sub: &str| -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> =
            fs::read_dir(corpus.join(sub))?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
        files.sort();
        Ok(files)
    };
    let small = sorted("small")?.into_iter().take(MIXED_SMALL);
    for file in small.chain(sorted("medium")?) {
        let name = file.file_name().context("a corpus file without a name")?;
        fs::hard_link(&file, partial.join(name))?;
    }
    fs::rename(&partial, &dir)?;
    Ok(dir)
}

/// dmarcpipe into a fresh database: the run and the records it stored.
fn dmarcpipe_run(binary: &Path, dir: &Path) -> Result<(Run, u64)> {
    let (admin, database, url) = create_database(binary, "compare")?;
    let result = (|| -> Result<(Run, u64)> {
        let mut command = dmarcpipe(binary, &url);
        command.args(["import", "--quiet"]).arg(dir);
        let run = timed(&command)?;
        let records =
            crate::psql_value(&url, "SELECT coalesce(sum(record_count), 0) FROM aggregate_reports")?.parse::<u64>();
        Ok((run, records.context("records stored")?))
    })();
    drop_database(&admin, &database)?;
    result
}

fn parsedmarc_run(parsedmarc: &Path, dir: &Path) -> Result<Run> {
    let mut command = Command::new(parsedmarc);
    command.args(["--offline", "-s"]).arg(dir);
    timed(&command)
}

fn median(runs: &[Run]) -> Run {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    sorted.get(sorted.len() / 2).copied().unwrap_or(Run { seconds: 0.0, peak_rss: 0 })
}

pub(crate) fn run(binary: &Path, parsedmarc: &Path, corpus: &Path, rounds: usize) -> Result<()> {
    let workloads = [("small report files (1-5 records)", corpus.join("small")), ("mixed set", mixed(corpus)?)];
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "parsedmarc (offline, parse only) and dmarcpipe (parse and store into PostgreSQL), {rounds} rounds, \
         alternating; {cores} cores; load average before: {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!();
    println!("| workload | files | records | tool | median s | fastest s | slowest s | records/s | peak RSS | ratio |");
    println!("| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, dir) in workloads {
        let files = fs::read_dir(&dir)?.count();
        let (mut ours, mut theirs, mut records) = (Vec::new(), Vec::new(), 0);
        for round in 0..rounds.max(1) {
            if round % 2 == 0 {
                theirs.push(parsedmarc_run(parsedmarc, &dir)?);
            }
            let (run, stored) = dmarcpipe_run(binary, &dir)?;
            ours.push(run);
            records = stored;
            if round % 2 == 1 {
                theirs.push(parsedmarc_run(parsedmarc, &dir)?);
            }
        }
        let (ours_median, theirs_median) = (median(&ours), median(&theirs));
        let ratio = theirs_median.seconds / ours_median.seconds.max(f64::MIN_POSITIVE);
        for (tool, runs, typical, ratio) in [
            ("parsedmarc 11.1.0", &theirs, theirs_median, String::new()),
            ("dmarcpipe", &ours, ours_median, format!("{ratio:.1}x")),
        ] {
            let fastest = runs.iter().map(|r| r.seconds).fold(f64::INFINITY, f64::min);
            let slowest = runs.iter().map(|r| r.seconds).fold(0.0, f64::max);
            let peak = runs.iter().map(|r| r.peak_rss).max().unwrap_or(0);
            println!(
                "| {name} | {files} | {records} | {tool} | {:.2} | {fastest:.2} | {slowest:.2} | {:.0} | {:.0} MB | {ratio} |",
                typical.seconds,
                records as f64 / typical.seconds,
                peak as f64 / (1 << 20) as f64,
            );
        }
    }
    println!();
    println!(
        "(ratio: parsedmarc's median wall time over dmarcpipe's; peak RSS: the largest of the rounds; load average \
         after: {})",
        fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}
