//! `make bench`: generates a deterministic corpus of aggregate reports, imports it into a fresh
//! database with the release binary, and prints reports/s, records/s and peak RSS.
//!
//! ```text
//! dmarcpipe-bench generate DIR [--files N] [--large-records N]
//! dmarcpipe-bench run --binary target/release/dmarcpipe --corpus DIR
//! ```
//!
//! The corpus: `small/` holds N files (default 2,000) mixing 1-5-record reports with a few
//! reports of 2,000-3,000 records, as plain XML, gzip, zip and mail with a gzip attachment;
//! `large/` holds one gzip report of a million records. Sources come from the benchmarking
//! range 198.18.0.0/15 (RFC 2544) and 2001:db8::/32, domains from example.com/net/org.
//! Everything is derived from a fixed seed, so two runs measure the same bytes.

use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const DOMAINS: &[&str] = &["example.com", "example.net", "example.org"];
const REPORTERS: &[(&str, &str)] = &[
    ("google.example", "noreply-dmarc-support@google.example"),
    ("Outlook.example", "dmarcreport@outlook.example"),
    ("yahoo.example", "dmarchelp@yahoo.example"),
    ("mail.ru.example", "dmarc_support@mail.ru.example"),
    ("gmx.example", "dmarc@gmx.example"),
];
const FIRST_DAY: u64 = 1_791_072_000; // 2026-10-04

fn source_ip(rng: &mut Rng) -> String {
    if rng.below(10) == 0 {
        format!("2001:db8:{:x}::{:x}", rng.below(0xffff), rng.below(0xffff) + 1)
    } else {
        let n = rng.below(1 << 17);
        format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
    }
}

fn record(rng: &mut Rng, domain: &str, out: &mut String) {
    let dkim_pass = rng.below(10) < 8;
    let spf_pass = rng.below(10) < 7;
    let disposition = if dkim_pass || spf_pass { "none" } else { rng.pick(&["none", "quarantine", "reject"]) };
    let _ = write!(
        out,
        "  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{count}</count>\n      <policy_evaluated>\n        \
         <disposition>{disposition}</disposition>\n        <dkim>{dkim}</dkim>\n        <spf>{spf}</spf>\n      </policy_evaluated>\n    \
         </row>\n    <identifiers>\n      <header_from>{domain}</header_from>\n    </identifiers>\n    <auth_results>\n      <dkim>\n        \
         <domain>{domain}</domain>\n        <selector>s{sel}</selector>\n        <result>{dkim}</result>\n      </dkim>\n      <spf>\n        \
         <domain>{domain}</domain>\n        <result>{spf}</result>\n      </spf>\n    </auth_results>\n  </record>\n",
        ip = source_ip(rng),
        count = 1 + rng.below(50),
        dkim = if dkim_pass { "pass" } else { "fail" },
        spf = if spf_pass { "pass" } else { "fail" },
        sel = rng.below(4),
    );
}

/// One report; returns (file stem, XML).
fn report(rng: &mut Rng, serial: u64, records: u64) -> (String, String) {
    let (org, email) = REPORTERS[rng.below(REPORTERS.len() as u64) as usize];
    let domain = rng.pick(DOMAINS);
    let begin = FIRST_DAY + 86_400 * rng.below(56);
    let end = begin + 86_399;
    let mut xml = String::with_capacity(800 + records as usize * 560);
    let _ = write!(
        xml,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n  <report_metadata>\n    \
         <org_name>{org}</org_name>\n    <email>{email}</email>\n    <report_id>bench-{serial}</report_id>\n    \
         <date_range>\n      <begin>{begin}</begin>\n      <end>{end}</end>\n    </date_range>\n  </report_metadata>\n  \
         <policy_published>\n    <domain>{domain}</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>reject</p>\n    \
         <sp>reject</sp>\n    <pct>100</pct>\n    <fo>0</fo>\n  </policy_published>\n"
    );
    for _ in 0..records {
        record(rng, domain, &mut xml);
    }
    xml.push_str("</feedback>\n");
    (format!("{org}!{domain}!{begin}!{end}!{serial}"), xml)
}

fn gzip(data: &[u8]) -> Result<Vec<u8>> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(data)?;
    Ok(encoder.finish()?)
}

fn zip_of(name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    writer.start_file(name, options)?;
    writer.write_all(data)?;
    Ok(writer.finish()?.into_inner())
}

fn mail_with(name: &str, gzipped: &[u8], serial: u64) -> String {
    let encoded = base64(gzipped);
    let mut body = String::new();
    for chunk in encoded.as_bytes().chunks(76) {
        body.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        body.push_str("\r\n");
    }
    format!(
        "From: noreply-dmarc@reporter.example\r\nTo: dmarc-reports@example.com\r\nSubject: Report Domain: example.com \
         Submitter: reporter.example Report-ID: <bench-{serial}>\r\nDate: Mon, 02 Nov 2026 00:00:00 +0000\r\n\
         Message-ID: <bench-{serial}@reporter.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; \
         boundary=\"b{serial}\"\r\n\r\n--b{serial}\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate report.\r\n\
         --b{serial}\r\nContent-Type: application/gzip; name=\"{name}.xml.gz\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{name}.xml.gz\"\r\n\r\n{body}--b{serial}--\r\n"
    )
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn generate(dir: &Path, files: u64, large_records: u64) -> Result<()> {
    let small = dir.join("small");
    let large = dir.join("large");
    fs::create_dir_all(&small)?;
    fs::create_dir_all(&large)?;
    let mut rng = Rng(0x00D3_A5C0_FFEE_1234);
    let (mut reports, mut records) = (0u64, 0u64);
    for serial in 0..files {
        // About 1 % of the files are big reports (Google-sized), the rest 1-5 records.
        let count = if serial % 97 == 13 { 2_000 + rng.below(1_000) } else { 1 + rng.below(5) };
        let (stem, xml) = report(&mut rng, serial, count);
        reports += 1;
        records += count;
        let path = small.join(format!("{serial:05}"));
        match serial % 20 {
            0..=7 => fs::write(path.with_extension("xml.gz"), gzip(xml.as_bytes())?)?,
            8..=12 => fs::write(path.with_extension("xml"), &xml)?,
            13..=15 => fs::write(path.with_extension("zip"), zip_of(&format!("{stem}.xml"), xml.as_bytes())?)?,
            _ => fs::write(path.with_extension("eml"), mail_with(&stem, &gzip(xml.as_bytes())?, serial))?,
        }
    }
    let (_, xml) = report(&mut rng, 1_000_000_000, large_records);
    fs::write(large.join("report-large.xml.gz"), gzip(xml.as_bytes())?)?;
    let manifest = serde_json::json!({
        "small": { "files": files, "reports": reports, "records": records },
        "large": { "files": 1, "reports": 1, "records": large_records, "xml_bytes": xml.len() },
    });
    fs::write(dir.join("manifest.json"), serde_json::to_string_pretty(&manifest)?)?;
    println!(
        "generated {} small files ({reports} reports, {records} records) and one report of {large_records} records ({} MB of XML) in {}",
        files,
        xml.len() >> 20,
        dir.display()
    );
    Ok(())
}

fn psql(url: &str, sql: &str) -> Result<()> {
    let status = Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .status()
        .context("running psql")?;
    if !status.success() {
        bail!("psql failed: {sql}");
    }
    Ok(())
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
    let admin = std::env::var("DATABASE_URL").context("DATABASE_URL must name the PostgreSQL server to measure")?;
    let database = format!("dmarcpipe_bench_{}", std::process::id());
    psql(&admin, &format!("CREATE DATABASE {database}"))?;
    let url = with_database(&admin, &database);
    // Migrations first, so the first phase measures imports only.
    let migrated = Command::new(binary).env("DATABASE_URL", &url).arg("migrate").output()?;
    if !migrated.status.success() {
        bail!("migrate failed: {}", String::from_utf8_lossy(&migrated.stderr));
    }
    let result = (|| -> Result<()> {
        let small = import(binary, &url, &corpus.join("small"), jobs)?;
        let again = import(binary, &url, &corpus.join("small"), jobs)?;
        let large = import(binary, &url, &corpus.join("large"), jobs)?;
        let mb = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        println!();
        println!(
            "{:<34} {:>9} {:>10} {:>8} {:>12} {:>12} {:>9}",
            "phase", "reports", "records", "seconds", "reports/s", "records/s", "peak RSS"
        );
        for (name, m) in [
            ("2,000 files, first import", &small),
            ("same files again (all duplicates)", &again),
            ("one report, 1,000,000 records", &large),
        ] {
            println!(
                "{name:<34} {:>9} {:>10} {:>8.2} {:>12.0} {:>12.0} {:>6.0} MB",
                m.reports,
                m.records,
                m.seconds,
                m.reports as f64 / m.seconds,
                m.records as f64 / m.seconds,
                mb(m.peak_rss)
            );
        }
        println!("\n(wall-clock time of `dmarcpipe import` end to end into PostgreSQL, rollup refresh included)");
        Ok(())
    })();
    psql(&admin, &format!("DROP DATABASE {database}"))?;
    result
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
        _ => bail!(
            "usage: dmarcpipe-bench generate DIR [--files N] [--large-records N] | run --corpus DIR [--binary PATH] [--jobs N]"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b"hello world"), "aGVsbG8gd29ybGQ=");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

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
