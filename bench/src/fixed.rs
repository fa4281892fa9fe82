//! The `fixed` phase of `make bench`: what one `dmarcpipe import` costs whatever it imports.
//!
//! Into a fresh, migrated database, alternating, [`ROUNDS`] times each: `import` of an empty
//! directory, and `import -` of one small report mail on stdin (a new report each time, so each
//! is stored, commit on disk, as an MTA pipe delivers it), once over TCP to 127.0.0.1 and once
//! over the server's Unix socket (and over TCP with `sslmode=prefer`, TLS when the server offers
//! it, which every connection did before local ones went without it). The wall time of each process is taken from spawn to exit;
//! the median, the fastest and the slowest are printed. A warm-up run of each goes first (page
//! cache, the record partition of the reports' month).

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::testkit::{ReportBuilder, gzip, mail_with_attachment};

use crate::{create_database, dmarcpipe, drop_database, psql_value};

/// Runs of each case.
const ROUNDS: usize = 21;

/// A small report mail (three records), distinct for each `serial`.
fn small_report(serial: usize) -> Vec<u8> {
    let mut rng = dmarcpipe_ingest::testkit::Rng(0x5eed_0000 + serial as u64);
    let report = ReportBuilder::new("fixed.example", &format!("fixed-{serial}"), "example.com", 1_793_577_600)
        .random_records(3, &mut rng);
    let subject = format!("Report Domain: example.com Submitter: fixed.example Report-ID: <fixed-{serial}>");
    mail_with_attachment(
        &subject,
        &format!("{}.xml.gz", report.file_stem()),
        "application/gzip",
        &gzip(report.xml().as_bytes()),
    )
}

/// Seconds one `dmarcpipe import` took, start to exit; fails unless it exited 0.
fn timed(mut command: Command, stdin: Option<&[u8]>) -> Result<f64> {
    command.stdout(Stdio::null()).stderr(Stdio::piped()).stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let started = Instant::now();
    let mut child = command.spawn().context("starting dmarcpipe import")?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes)?;
    }
    let output = child.wait_with_output()?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("import failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    Ok(seconds)
}

/// Median, fastest, slowest, in milliseconds.
fn spread(mut seconds: Vec<f64>) -> (f64, f64, f64) {
    seconds.sort_by(f64::total_cmp);
    let ms = |s: f64| s * 1000.0;
    (
        ms(seconds.get(seconds.len() / 2).copied().unwrap_or(0.0)),
        ms(seconds.first().copied().unwrap_or(0.0)),
        ms(seconds.last().copied().unwrap_or(0.0)),
    )
}

/// The URLs of `database` over TCP (127.0.0.1) and over the Unix socket, from what the server
/// says of itself; either is missing when the server does not listen that way.
fn transports(admin: &str, database: &str) -> Result<Vec<(&'static str, String)>> {
    let facts = psql_value(
        admin,
        "SELECT current_user || ' ' || current_setting('port') || ' ' || \
         coalesce(nullif(split_part(current_setting('unix_socket_directories'), ',', 1), ''), '-') || ' ' || \
         coalesce(nullif(current_setting('listen_addresses'), ''), '-')",
    )?;
    let fields: Vec<&str> = facts.split(' ').collect();
    let [user, port, socket_dir, listen] = fields[..] else {
        bail!("unexpected answer from the server: {facts}");
    };
    let mut urls = Vec::new();
    if listen != "-" {
        let tcp = format!("postgres://{user}@127.0.0.1:{port}/{database}");
        urls.push(("TCP 127.0.0.1", tcp.clone()));
        // What every connection did before it was reached in plain text: for comparison.
        urls.push(("TCP, sslmode=prefer", format!("{tcp}?sslmode=prefer")));
    }
    if socket_dir != "-" {
        urls.push(("Unix socket", format!("postgres://{user}@localhost/{database}?host={socket_dir}&port={port}")));
    }
    Ok(urls)
}

pub(crate) fn run(binary: &Path, corpus: &Path) -> Result<()> {
    let empty = corpus.join("empty");
    std::fs::create_dir_all(&empty)?;
    if std::fs::read_dir(&empty)?.next().is_some() {
        bail!("{} should be empty", empty.display());
    }
    let (admin, database, _) = create_database(binary, "fixed")?;
    let result = (|| -> Result<()> {
        println!();
        println!(
            "{:<52} {:>6} {:>10} {:>10} {:>10}",
            "fixed cost of one process (wall time)", "runs", "median", "fastest", "slowest"
        );
        let mut serial = 0;
        for (transport, url) in transports(&admin, &database)? {
            let empty_dir = || {
                let mut command = dmarcpipe(binary, &url);
                command.args(["import", "--quiet"]).arg(&empty);
                command
            };
            let stdin = || {
                let mut command = dmarcpipe(binary, &url);
                command.args(["import", "--quiet", "-"]);
                command
            };
            // Warm-up: page cache, and the partition of the reports' month.
            timed(empty_dir(), None)?;
            timed(stdin(), Some(&small_report(serial)))?;
            serial += 1;
            let (mut empties, mut messages) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                empties.push(timed(empty_dir(), None)?);
                messages.push(timed(stdin(), Some(&small_report(serial)))?);
                serial += 1;
            }
            for (what, seconds) in
                [("import of an empty directory", empties), ("import - of one small report (stored)", messages)]
            {
                let (median, fastest, slowest) = spread(seconds);
                println!(
                    "{:<52} {ROUNDS:>6} {median:>7.1} ms {fastest:>7.1} ms {slowest:>7.1} ms",
                    format!("{what}, {transport}")
                );
            }
        }
        let stored = psql_value(&crate::with_database(&admin, &database), "SELECT count(*) FROM aggregate_reports")?;
        if stored != serial.to_string() {
            bail!("{serial} reports were sent on stdin but the database holds {stored}");
        }
        Ok(())
    })();
    drop_database(&admin, &database)?;
    result
}
