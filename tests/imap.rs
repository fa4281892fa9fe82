//! IMAP intake end to end: a real Dovecot per test (Debian's `dovecot-imapd`, started on
//! loopback ports with a throwaway configuration), the real `dmarcpipe fetch` and `serve`,
//! and the test's own PostgreSQL. Faults come from a TCP proxy in front of Dovecot (which can
//! hold a command or cut the connection) and the one in front of PostgreSQL.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::imap::{ImapProxy, Introspection, Mailbox, counting_token_command, quoted, runs, wait_until};
use common::smtp::{DatabaseProxy, Served};
use common::{Dmarcpipe, code, json, path, root, scalar};
use dmarcpipe_ingest::intake::imap::dovecot::DovecotOptions;
use dmarcpipe_ingest::testkit::{ReportBuilder, gzip, mail_with_attachment};
use sqlx::PgPool;

/// A sample as a mailbox holds it: lines end in CRLF (the files have LF).
fn sample(name: &str) -> Vec<u8> {
    let bytes = std::fs::read(root().join("samples").join(name)).expect("the sample");
    let mut mail = Vec::with_capacity(bytes.len() + bytes.len() / 40);
    for (i, &byte) in bytes.iter().enumerate() {
        if byte == b'\n' && (i == 0 || bytes[i - 1] != b'\r') {
            mail.push(b'\r');
        }
        mail.push(byte);
    }
    mail
}

/// Raw bytes (an attachment), as they are.
fn sample_file(name: &str) -> Vec<u8> {
    std::fs::read(root().join("samples").join(name)).expect("the sample")
}

/// A small report mail (gzip attachment), distinct for each `serial`.
fn report_mail(serial: u32) -> Vec<u8> {
    let report = ReportBuilder::new("google.example", &format!("imap-{serial}"), "example.com", 1_793_491_200).record(
        &format!("192.0.2.{}", serial % 250 + 1),
        u64::from(serial) + 1,
        "none",
        "pass",
        "pass",
    );
    mail_with_attachment(
        &format!("Report domain: example.com Submitter: google.example Report-ID: imap-{serial}"),
        &format!("google.example!example.com!1793491200!1793577599-{serial}.xml.gz"),
        "application/gzip",
        &gzip(report.xml().as_bytes()),
    )
}

fn report_mails(count: u32) -> Vec<Vec<u8>> {
    (0..count).map(report_mail).collect()
}

/// `dmarcpipe fetch --json` with this config.
fn fetch(dmarcpipe: &Dmarcpipe, config: &PathBuf) -> std::process::Output {
    dmarcpipe.run(&["--config", path(config), "fetch", "--json"])
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    scalar(pool, sql).await
}

#[sqlx::test]
async fn fetch_stores_each_message_and_moves_it_to_the_folder_of_its_outcome(pool: PgPool) {
    let mailbox = Mailbox::start();
    let yahoo_gzip = mail_with_attachment(
        "Report Domain: example.com Submitter: Yahoo",
        "yahoo.xml.gz",
        "application/gzip",
        &sample_file("aggregate/yahoo.xml.gz"),
    );
    let not_well_formed = mail_with_attachment(
        "Report domain: example.com",
        "broken.xml",
        "text/xml",
        &sample_file("aggregate/rejected/not-well-formed.xml"),
    );
    let stored = vec![sample("aggregate/google-zip-in-mail.eml"), yahoo_gzip, sample("forensic/google-arf.eml")];
    let not_report = sample("aggregate/not-reports/human-reply.eml");
    let mut all = stored.clone();
    all.push(not_report.clone());
    all.push(not_well_formed.clone());
    mailbox.append("INBOX", &all);

    let config = mailbox.config(&[mailbox.section()]);
    let dmarcpipe = Dmarcpipe::on(&pool);
    let output = fetch(&dmarcpipe, &config);
    assert_eq!(code(&output), 1, "a rejected input: exit 1; {}", stderr(&output));
    let summary = json(&output);
    for (key, expected) in [("inputs", 5), ("stored", 3), ("not_report", 1), ("rejected", 1), ("duplicate", 0)] {
        assert_eq!(summary[key], expected, "{key} in {summary}");
    }
    assert_eq!(summary["mailboxes"][0]["name"], "reports");
    assert_eq!(summary["forensic"], 1);

    // Each message where its outcome sends it; INBOX empty; flags untouched (BODY.PEEK).
    assert!(mailbox.messages("INBOX").is_empty());
    assert_eq!(mailbox.messages("DMARC.Archive"), stored);
    assert_eq!(mailbox.messages("DMARC.Not reports"), vec![not_report]);
    assert_eq!(mailbox.messages("DMARC.Rejected"), vec![not_well_formed]);

    // Rows and outcomes as for import, with the IMAP origin.
    let inputs: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT channel, origin, outcome FROM dmarc_inputs ORDER BY substring(origin from ';UID=(\\d+)$')::int",
    )
    .fetch_all(&pool)
    .await
    .expect("inputs");
    assert_eq!(inputs.len(), 5);
    assert!(inputs.iter().all(|(channel, _, _)| channel == "imap"));
    let validity = {
        let mut client = mailbox.client();
        client.command("SELECT INBOX").expect("selected");
        client.logout();
        inputs[0].1.split("UIDVALIDITY=").nth(1).and_then(|rest| rest.split('/').next()).map(str::to_owned)
    };
    assert_eq!(
        inputs[0].1,
        format!(
            "imap://dmarc%40example.test@127.0.0.1:{}/INBOX;UIDVALIDITY={}/;UID=1",
            mailbox.dovecot.imap_port,
            validity.expect("a UIDVALIDITY")
        )
    );
    let outcomes: Vec<&str> = inputs.iter().map(|(_, _, outcome)| outcome.as_str()).collect();
    assert_eq!(outcomes, ["stored", "stored", "stored", "not_report", "rejected"]);
    let (records, messages): (i64, i64) = sqlx::query_as(
        "SELECT sum(record_count)::bigint, sum(message_count)::bigint FROM dmarc_reports WHERE org_name = 'google.example'",
    )
    .fetch_one(&pool)
    .await
    .expect("the Google report");
    assert_eq!((records, messages), (6, 389));

    // The same messages appended again: nothing stored twice. (A rejected input is read
    // again each time it comes: a newer version may read it.)
    mailbox.append("INBOX", &all);
    let again = fetch(&dmarcpipe, &config);
    let summary = json(&again);
    for (key, expected) in [("inputs", 5), ("stored", 0), ("duplicate", 4), ("rejected", 1), ("reports", 0)] {
        assert_eq!(summary[key], expected, "{key} in {summary}");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_forensic").await, 1);
    assert!(mailbox.messages("INBOX").is_empty());
    assert_eq!(mailbox.messages("DMARC.Archive").len(), 7, "duplicates are archived");
    assert_eq!(mailbox.messages("DMARC.Rejected").len(), 2);
}
