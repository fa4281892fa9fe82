//! The memory part of `make bench`: inputs shaped to make memory grow if anything held what it
//! should stream, each imported alone with its peak RSS, and `serve` receiving several such
//! messages at once, whose peak RSS must stay within the memory budget (`[limits]
//! max_memory`, 512 MiB by default).
//!
//! - a gzip of three nested stored zips around a 600,000-record report (about 200 MB of XML):
//!   each archive as large as the report;
//! - a report of 1,000,000 records from 1,000,000 distinct IPv4 sources, and one of 1,000,000
//!   from distinct IPv6 sources: per-source sums that must not all be held;
//! - reports whose records have the shapes that cost the most per record: domains of about
//!   200 characters, six DKIM and six SPF results per record, and a namespaced RFC 9990
//!   extension in every record (each large enough that holding its records would show);
//! - `serve` with 6 clients sending at once a mail with the nested archive attached.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};
use dmarcpipe_ingest::testkit::{ReportBuilder, gzip, mail_with_attachment, zip_stored};

use crate::smtp::{data_of, deliver, peak_rss, start_server};
use crate::{ImportOptions, create_database, drop_database, import};

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

/// A record shape that costs more than the common one.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Domains of about 200 characters in every domain field.
    LongDomains,
    /// Six DKIM and six SPF results per record.
    ManyResults,
    /// A namespaced RFC 9990 extension (about 150 bytes) in every record.
    Extensions,
}

/// The shaped reports: file, description, shape, records.
const SHAPED: &[(&str, &str, Shape, u64)] = &[
    ("shape-long-domains.xml.gz", "records with 200-character domains", Shape::LongDomains, 500_000),
    ("shape-many-results.xml.gz", "records with 6 DKIM and 6 SPF results each", Shape::ManyResults, 500_000),
    ("shape-extensions.xml.gz", "records with an RFC 9990 extension each", Shape::Extensions, 1_000_000),
];

/// Writes a report of `records` records of `shape`, gzip-compressed, streamed to `path`.
fn write_shaped(path: &Path, shape: Shape, records: u64) -> Result<()> {
    let file = std::io::BufWriter::new(fs::File::create(path)?);
    let mut out = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    let long = |serial: u64| {
        let label = format!("{:x}", serial * 0x9e37_79b9 % 0xffff_ffff);
        format!("{}.{label}.example.com", ["a".repeat(60), "b".repeat(60), "c".repeat(58)].join("."))
    };
    let policy = match shape {
        Shape::LongDomains => long(0),
        _ => "example.com".to_owned(),
    };
    write!(
        out,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback xmlns:ext=\"urn:example:dmarc-ext\">\n  \
         <version>1.0</version>\n  <report_metadata>\n    <org_name>shapes.example</org_name>\n    \
         <email>dmarc@shapes.example</email>\n    <report_id>shape-{shape:?}</report_id>\n    <date_range>\n      \
         <begin>{DAY}</begin>\n      <end>{}</end>\n    </date_range>\n  </report_metadata>\n  <policy_published>\n    \
         <domain>{policy}</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>reject</p>\n  </policy_published>\n",
        DAY + 86_399
    )?;
    let mut record = String::with_capacity(4096);
    for serial in 0..records {
        record.clear();
        let ip = format!("2001:db8:{:x}:{:x}::{:x}", serial >> 16, serial & 0xffff, serial % 7 + 1);
        let domain = match shape {
            Shape::LongDomains => long(serial),
            _ => "example.com".to_owned(),
        };
        let _ = write!(
            record,
            "  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{}</count>\n      \
             <policy_evaluated>\n        <disposition>none</disposition>\n        <dkim>pass</dkim>\n        \
             <spf>fail</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n      \
             <header_from>{domain}</header_from>\n      <envelope_from>{domain}</envelope_from>\n    </identifiers>\n    \
             <auth_results>\n",
            1 + serial % 40
        );
        let results = if matches!(shape, Shape::ManyResults) { 6 } else { 1 };
        for n in 0..results {
            let _ = write!(
                record,
                "      <dkim>\n        <domain>d{n}.{domain}</domain>\n        <selector>selector{n}</selector>\n        \
                 <result>{}</result>\n      </dkim>\n",
                if n % 2 == 0 { "pass" } else { "fail" }
            );
        }
        for n in 0..results {
            let _ = write!(
                record,
                "      <spf>\n        <domain>s{n}.{domain}</domain>\n        <scope>mfrom</scope>\n        \
                 <result>{}</result>\n      </spf>\n",
                if n % 3 == 0 { "pass" } else { "softfail" }
            );
        }
        record.push_str("    </auth_results>\n");
        if matches!(shape, Shape::Extensions) {
            let _ = write!(
                record,
                "    <ext:delivery xmlns:ext=\"urn:example:dmarc-ext\">\n      <ext:hops>{}</ext:hops>\n      \
                 <ext:tag>record-{serial}</ext:tag>\n    </ext:delivery>\n",
                serial % 9
            );
        }
        record.push_str("  </record>\n");
        out.write_all(record.as_bytes())?;
    }
    out.write_all(b"</feedback>\n")?;
    out.finish()?.flush()?;
    Ok(())
}

/// Writes the shaped reports that are missing from `dir` (corpora generated before they were
/// added get them on the next run).
pub(crate) fn generate_shapes(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    for (file, _, shape, records) in SHAPED {
        let path = dir.join(file);
        if !path.exists() {
            let partial = path.with_extension("partial");
            write_shaped(&partial, *shape, *records)?;
            fs::rename(&partial, &path)?;
        }
    }
    Ok(())
}

/// Writes the memory corpus into `dir`.
pub(crate) fn generate(dir: &Path) -> Result<()> {
    generate_shapes(dir)?;
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
    generate_shapes(&dir)?;
    println!();
    println!("{:<58} {:>10} {:>8} {:>9}", "memory: each input alone", "records", "seconds", "peak RSS");
    let shaped = SHAPED.iter().map(|(file, name, ..)| (*name, *file));
    for (name, file) in [
        ("a gzip of three nested stored zips (200 MB of XML)", NESTED),
        ("1,000,000 records from distinct IPv4 sources", "distinct-ipv4.xml.gz"),
        ("1,000,000 records from distinct IPv6 sources", "distinct-ipv6.xml.gz"),
    ]
    .into_iter()
    .chain(shaped)
    {
        let (admin, database, url) = create_database(binary, "memory")?;
        let measured = import(binary, &url, &dir.join(file), ImportOptions::default());
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
