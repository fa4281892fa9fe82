//! The memory part of `make bench`: inputs shaped to make memory grow if anything held what it
//! should stream, each imported alone with its peak RSS, and `serve` receiving several such
//! messages at once, whose peak RSS must stay within the memory budget (`[limits]
//! max_memory`, 512 MiB by default).
//!
//! - a gzip of three nested stored zips around a 600,000-record report (about 200 MB of XML):
//!   each archive as large as the report;
//! - a report of 1,000,000 records from 1,000,000 distinct IPv4 sources, and one of 1,000,000
//!   from distinct IPv6 sources: per-source sums that must not all be held;
//! - `serve` with 6 clients sending at once a mail with the nested archive attached.

use std::fs;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use dmarcpipe_ingest::testkit::{ReportBuilder, gzip, mail_with_attachment, zip_stored};

use crate::smtp::{data_of, deliver, peak_rss, start_server};
use crate::{create_database, drop_database, import};

const DAY: u64 = 1_793_577_600; // 2026-11-02
const NESTED: &str = "nested-stored-zips.xml.zip.gz";

/// A report whose every record comes from a source of its own.
fn distinct_sources(records: u64, ipv6: bool) -> Vec<u8> {
    let mut report = ReportBuilder::new("memory.example", &format!("distinct-{ipv6}"), "example.com", DAY);
    for serial in 0..records {
        let ip = if ipv6 {
            format!("2001:db8:{:x}:{:x}::1", serial >> 16, serial & 0xffff)
        } else {
            format!("{}.{}.{}.1", 10 + (serial >> 16), (serial >> 8) & 0xff, serial & 0xff)
        };
        report = report.record(&ip, 1, "none", "pass", "pass");
    }
    gzip(report.xml().as_bytes())
}

/// Writes the memory corpus into `dir`.
pub(crate) fn generate(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    let mut rng = dmarcpipe_ingest::testkit::Rng(0x3e3e_3e3e);
    let xml = ReportBuilder::new("memory.example", "nested-1", "example.com", DAY)
        .random_records(600_000, &mut rng)
        .xml()
        .into_bytes();
    let nested = zip_stored(&[("level2.zip", &zip_stored(&[("level3.zip", &zip_stored(&[("report.xml", &xml)]))]))]);
    fs::write(dir.join(NESTED), gzip(&nested))?;
    fs::write(dir.join("distinct-ipv4.xml.gz"), distinct_sources(1_000_000, false))?;
    fs::write(dir.join("distinct-ipv6.xml.gz"), distinct_sources(1_000_000, true))?;
    Ok(())
}

pub(crate) fn run(binary: &Path, corpus: &Path) -> Result<()> {
    let dir = corpus.join("memory");
    println!();
    println!("{:<58} {:>10} {:>8} {:>9}", "memory: each input alone", "records", "seconds", "peak RSS");
    for (name, file) in [
        ("a gzip of three nested stored zips (200 MB of XML)", NESTED),
        ("1,000,000 records from distinct IPv4 sources", "distinct-ipv4.xml.gz"),
        ("1,000,000 records from distinct IPv6 sources", "distinct-ipv6.xml.gz"),
    ] {
        let (admin, database, url) = create_database(binary, "memory")?;
        let measured = import(binary, &url, &dir.join(file), None);
        drop_database(&admin, &database)?;
        let measured = measured?;
        println!(
            "{name:<58} {:>10} {:>8.2} {:>6.0} MB",
            measured.records,
            measured.seconds,
            measured.peak_rss as f64 / (1 << 20) as f64
        );
    }
    serve_case(binary, &dir)
}

/// `serve` receiving the nested archive from several clients at once.
fn serve_case(binary: &Path, dir: &Path) -> Result<()> {
    const CLIENTS: usize = 6;
    let attachment = fs::read(dir.join(NESTED))?;
    let mail = mail_with_attachment("Report Domain: example.com", NESTED, "application/gzip", &attachment);
    let data = data_of(&mail);
    let (admin, database, url) = create_database(binary, "memory_serve")?;
    let result = (|| -> Result<()> {
        let (mut child, server) = start_server(binary, &url, CLIENTS)?;
        let started = Instant::now();
        let replies: Vec<Result<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    let data = &data;
                    scope.spawn(move || deliver(server, data, client))
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap_or_else(|_| bail!("a client panicked"))).collect()
        });
        let seconds = started.elapsed().as_secs_f64();
        let peak = peak_rss(child.id());
        let _ = child.kill();
        let _ = child.wait();
        let accepted = replies.iter().filter(|reply| reply.as_ref().is_ok_and(|r| r.starts_with("250"))).count();
        let later = replies.iter().filter(|reply| reply.as_ref().is_ok_and(|r| r.starts_with("451"))).count();
        if accepted + later != CLIENTS {
            bail!("unexpected replies: {replies:?}");
        }
        println!(
            "{:<58} {:>10} {:>8.2} {:>6.0} MB",
            format!("serve, {CLIENTS} clients at once, the nested archive each"),
            format!("{accepted} ok"),
            seconds,
            peak as f64 / (1 << 20) as f64
        );
        if later > 0 {
            println!("({later} of them answered 451 for lack of memory: their senders retry)");
        }
        Ok(())
    })();
    drop_database(&admin, &database)?;
    result
}
