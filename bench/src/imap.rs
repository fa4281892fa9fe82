//! `make bench-imap`: a real Dovecot on loopback (the test server of
//! `dmarcpipe_ingest::intake::imap::dovecot`), N small report messages APPENDed to its INBOX
//! (not measured), then one `dmarcpipe fetch` that stores every message and moves it to the
//! archive folder, timed end to end; then the count check: the INBOX is empty, the archive
//! holds N messages, and the database holds each message exactly once.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::intake::imap::dovecot::{Dovecot, DovecotOptions, PASSWORD, USER};

use crate::{create_database, drop_database, psql_value};

pub fn run(binary: &Path, count: usize) -> Result<()> {
    let dovecot = Dovecot::start(&DovecotOptions::default()).context("starting Dovecot")?;
    let (admin, database, url) = create_database(binary, "imap")?;
    let result = measure(binary, &dovecot, &url, count);
    drop_database(&admin, &database)?;
    result
}

fn measure(binary: &Path, dovecot: &Dovecot, url: &str, count: usize) -> Result<()> {
    let messages = crate::smtp::messages(count);
    let mut client = dovecot.client()?;
    let appending = Instant::now();
    for message in &messages {
        client.append("INBOX", message)?;
    }
    eprintln!("appended {count} messages in {:.1}s", appending.elapsed().as_secs_f64());

    let config = dovecot.dir.join("dmarcpipe-bench.toml");
    std::fs::write(
        &config,
        format!(
            "[[imap]]\nname = \"bench\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nuser = \"{USER}\"\npassword = \"{PASSWORD}\"\n",
            dovecot.imap_port
        ),
    )?;
    let started = Instant::now();
    let output = Command::new(binary)
        .env("DATABASE_URL", url)
        .env("DMARCPIPE_NO_ENRICH", "1")
        .arg("--config")
        .arg(&config)
        .args(["fetch", "--json"])
        .output()
        .context("running dmarcpipe fetch")?;
    let seconds = started.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!("fetch failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).context("fetch summary")?;
    let field = |name: &str| summary[name].as_u64().unwrap_or(0);

    let left = client.uids("INBOX")?.len();
    let archived = client.uids("DMARC.Archive")?.len();
    client.logout();
    let stored: usize = psql_value(url, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'stored'")?.parse()?;
    let inputs: usize = psql_value(url, "SELECT count(*) FROM dmarc_inputs")?.parse()?;
    let reports: usize = psql_value(url, "SELECT count(DISTINCT (org_name, report_id)) FROM dmarc_reports")?.parse()?;
    let rows: usize = psql_value(url, "SELECT count(*) FROM dmarc_reports")?.parse()?;

    println!();
    println!("{:<44} {:>9} {:>8} {:>10} {:>9}", "phase", "messages", "seconds", "messages/s", "peak RSS");
    println!(
        "{:<44} {:>9} {:>8.2} {:>10.0} {:>6.0} MB",
        "IMAP fetch: store, then UID MOVE to archive",
        field("stored"),
        seconds,
        field("stored") as f64 / seconds,
        field("peak_rss_bytes") as f64 / (1 << 20) as f64
    );
    println!(
        "\n(one `dmarcpipe fetch` end to end: login, folders, fetch, commit on disk, move; the INBOX keeps \
         {left}, the archive holds {archived}; the database holds {inputs} inputs, {stored} stored, {rows} reports, \
         {reports} distinct)"
    );
    if field("stored") as usize != count
        || left != 0
        || archived != count
        || inputs != count
        || stored != count
        || rows != count
        || reports != count
    {
        bail!(
            "count check failed: {count} appended, {} stored by fetch, {left} left in INBOX, {archived} archived, \
             {inputs} inputs ({stored} stored), {rows} reports ({reports} distinct)",
            field("stored")
        );
    }
    println!("count check: every message stored exactly once and moved");
    Ok(())
}
