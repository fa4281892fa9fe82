//! IMAP intake end to end: a real Dovecot per test (Debian's `dovecot-imapd`, started on
//! loopback ports with a throwaway configuration), the real `dmarcpipe fetch` and `serve`,
//! and the test's own PostgreSQL. Faults come from a TCP proxy in front of Dovecot (which can
//! hold a command or cut the connection) and the one in front of PostgreSQL.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::imap::{ImapProxy, Introspection, Mailbox, counting_token_command, runs, wait_until};
use common::smtp::{DatabaseProxy, Served};
use common::{Dmarcpipe, Sealing, code, json, path, root, scalar};
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

/// A Dovecot whose INBOX holds `count` report mails, a proxy in front of it, and a config
/// that goes through the proxy.
fn proxied(count: u32) -> (Mailbox, ImapProxy, Vec<Vec<u8>>, PathBuf) {
    let mailbox = Mailbox::start();
    let imap = ImapProxy::start(mailbox.dovecot.imap_port);
    let messages = report_mails(count);
    mailbox.append("INBOX", &messages);
    let config = mailbox.config(&[mailbox.section().set("port", &imap.port.to_string())]);
    (mailbox, imap, messages, config)
}

/// `dmarcpipe fetch --json` with this config.
fn fetch(dmarcpipe: &Dmarcpipe, config: &std::path::Path) -> std::process::Output {
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

    // Rejected messages are kept, sealed (so that the same bytes again are a duplicate).
    let config = mailbox.config(&[mailbox.section()]);
    let recipient = Sealing::new().recipient;
    let mut text = std::fs::read_to_string(&config).expect("the config");
    text.push_str(&format!("[forensic]\nrecipients = [\"{recipient}\"]\n"));
    std::fs::write(&config, text).expect("config written");
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

    // The same messages appended again: nothing stored twice, and the rejected one is a
    // duplicate of the input kept for `reprocess`, archived as any duplicate.
    mailbox.append("INBOX", &all);
    let again = fetch(&dmarcpipe, &config);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    let summary = json(&again);
    for (key, expected) in [("inputs", 5), ("stored", 0), ("duplicate", 5), ("rejected", 0), ("reports", 0)] {
        assert_eq!(summary[key], expected, "{key} in {summary}");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_forensic").await, 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'rejected'").await, 1);
    assert!(mailbox.messages("INBOX").is_empty());
    assert_eq!(mailbox.messages("DMARC.Archive").len(), 8, "duplicates are archived");
    assert_eq!(mailbox.messages("DMARC.Rejected").len(), 1);
}

/// `dmarcpipe fetch --json` started in the background, its stderr in a file.
struct Running {
    child: std::process::Child,
    stderr: PathBuf,
}

impl Running {
    fn start(dmarcpipe: &Dmarcpipe, args: &[&str], dir: &std::path::Path) -> Running {
        let stderr = dir.join(format!("stderr-{}", std::process::id()));
        let child = dmarcpipe
            .command(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("a file"))
            .spawn()
            .expect("dmarcpipe starts");
        Running { child, stderr }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn finish(self) -> (std::process::Output, String) {
        let output = self.child.wait_with_output().expect("dmarcpipe ends");
        let stderr = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        (output, stderr)
    }
}

#[sqlx::test]
async fn serve_idles_beside_smtp_and_stores_a_message_appended_meanwhile(pool: PgPool) {
    let mailbox = Mailbox::start();
    let config = mailbox.config(&[mailbox.section()]);
    let dmarcpipe = Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&config));
    let mut served = Served::start(&dmarcpipe, &[]);
    let watching = served.wait_for_log("watching INBOX", Duration::from_secs(30));
    assert!(watching.contains("idle=true"), "{watching}");

    mailbox.append("INBOX", &[report_mail(1)]);
    let line = served.wait_for_log("moved to DMARC/Archive", Duration::from_secs(30));
    for field in ["mailbox=reports", "outcome=\"stored\"", "reports=1", "records=1", "input=1"] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(line.contains(";UID=1 moved to DMARC/Archive"), "{line}");
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs WHERE channel = 'imap'").await, 1);
    assert!(mailbox.messages("INBOX").is_empty());

    // SIGTERM ends the IDLE and logs out.
    assert!(served.stop().success());
    assert!(mailbox.dovecot.log().contains("Logged out"), "{}", mailbox.dovecot.log());
}

#[sqlx::test]
async fn a_database_outage_mid_run_leaves_what_was_not_stored_in_place(pool: PgPool) {
    // 40 small messages: a batch of 32, then one of 8.
    let (mailbox, imap, _, config) = proxied(40);
    let database = DatabaseProxy::start(&pool);
    imap.hold("BODY.PEEK", 2);
    let url = database.url(&pool);
    let running = Running::start(
        &Dmarcpipe::on(&pool),
        &["--config", path(&config), "--database-url", &url, "fetch", "--json"],
        mailbox.dir.path(),
    );
    imap.wait_holding(Duration::from_secs(60));
    assert_eq!(mailbox.messages("INBOX").len(), 8, "the first batch is stored and moved");
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 32);

    database.cut();
    imap.release();
    wait_until("fetch reports the outage", Duration::from_secs(90), || running.stderr().contains("trying again"));
    assert_eq!(mailbox.messages("INBOX").len(), 8, "nothing moved that was not stored");
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 32);

    database.restore();
    let (output, stderr) = running.finish();
    assert_eq!(code(&output), 0, "{stderr}");
    assert_eq!(json(&output)["stored"], 40);
    assert!(mailbox.messages("INBOX").is_empty());
    assert_eq!(mailbox.messages("DMARC.Archive").len(), 40);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'stored'").await, 40);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 40, "nothing doubled");
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 40);
}

#[sqlx::test]
async fn the_connection_cut_mid_fetch_and_mid_move_loses_and_doubles_nothing(pool: PgPool) {
    let (mailbox, imap, _, config) = proxied(40);
    imap.hold("BODY.PEEK", 2);
    let running =
        Running::start(&Dmarcpipe::on(&pool), &["--config", path(&config), "fetch", "--json"], mailbox.dir.path());
    // Mid-fetch: the second batch's FETCH never reaches the server.
    imap.wait_holding(Duration::from_secs(60));
    imap.cut();
    // Mid-move, after the reconnection: that batch is committed but not moved.
    imap.hold("UID MOVE", 1);
    imap.wait_holding(Duration::from_secs(60));
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 40);
    assert_eq!(mailbox.messages("INBOX").len(), 8);
    imap.cut();

    let (output, stderr) = running.finish();
    assert_eq!(code(&output), 0, "{stderr}");
    let summary = json(&output);
    // The batch whose move was cut is moved after the reconnection, not read again.
    assert_eq!((summary["stored"].as_u64(), summary["duplicate"].as_u64()), (Some(40), Some(0)), "{summary}");
    assert_eq!(summary["not_moved"], 0);
    assert!(stderr.contains("closed the connection") || stderr.contains("lost"), "{stderr}");
    assert!(stderr.contains("committed but not moved to DMARC/Archive: moved on the next pass"), "{stderr}");
    assert!(mailbox.messages("INBOX").is_empty());
    assert_eq!(mailbox.messages("DMARC.Archive").len(), 40, "each message once");
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 40);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 40);
}

#[sqlx::test]
async fn a_crash_between_commit_and_move_gives_a_duplicate_not_a_loss(pool: PgPool) {
    let (mailbox, imap, messages, config) = proxied(5);
    imap.hold("UID MOVE", 1);
    let mut running =
        Running::start(&Dmarcpipe::on(&pool), &["--config", path(&config), "fetch", "--json"], mailbox.dir.path());
    imap.wait_holding(Duration::from_secs(60));
    // Committed, not moved: kill -9.
    running.child.kill().expect("SIGKILL");
    let _ = running.child.wait();
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'stored'").await, 5);
    assert_eq!(mailbox.messages("INBOX"), messages);
    imap.cut();

    let config = mailbox.config(&[mailbox.section()]);
    let output = fetch(&Dmarcpipe::on(&pool), &config);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let summary = json(&output);
    assert_eq!((summary["stored"].as_u64(), summary["duplicate"].as_u64()), (Some(0), Some(5)), "{summary}");
    assert!(mailbox.messages("INBOX").is_empty());
    assert_eq!(mailbox.messages("DMARC.Archive"), messages);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 5);
}

#[sqlx::test]
async fn a_wrong_password_is_one_clear_error_and_no_storm(pool: PgPool) {
    let mailbox = Mailbox::start();
    mailbox.append("INBOX", &[report_mail(1)]);
    let config = mailbox.config(&[mailbox.section().text("password", "wrong")]);
    let output = fetch(&Dmarcpipe::on(&pool), &config);
    assert_eq!(code(&output), 2);
    let said = stderr(&output);
    let errors: Vec<&str> = said.lines().filter(|line| line.contains("refused")).collect();
    assert_eq!(errors.len(), 1, "{said}");
    assert!(
        errors[0]
            .contains("mailbox reports: login as dmarc@example.test refused by 127.0.0.1: NO [AUTHENTICATIONFAILED]"),
        "{said}"
    );
    assert_eq!(mailbox.dovecot.log().matches("Password mismatch").count(), 1);

    // serve waits a long while before trying again.
    let dmarcpipe = Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&config));
    let mut served = Served::start_with(&dmarcpipe, &["serve"]);
    let line = served.wait_for_log("refused", Duration::from_secs(30));
    assert!(line.contains("ERROR") && line.contains("mailbox reports:"), "{line}");
    let wait: f64 = line
        .split("trying again in ")
        .nth(1)
        .and_then(|rest| rest.split('s').next()?.parse().ok())
        .expect("the wait is said");
    assert!(wait >= 30.0, "{line}");
    // A storm would show dozens of attempts in this time.
    std::thread::sleep(Duration::from_secs(3));
    assert!(served.stop().success());
    assert_eq!(mailbox.dovecot.log().matches("Password mismatch").count(), 2);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 0);
}

/// A mail of about `bytes` bytes (a text attachment).
fn large_mail(bytes: usize) -> Vec<u8> {
    let text: String = (0..bytes / 64).map(|i| format!("{i:>62} \n")).collect();
    mail_with_attachment("Not a report: a large attachment", "big.txt", "text/plain", text.as_bytes())
}

#[sqlx::test]
async fn a_message_over_the_cap_is_not_fetched(pool: PgPool) {
    let mailbox = Mailbox::start();
    let big = large_mail(40_000);
    mailbox.append("INBOX", &[report_mail(1), big.clone(), report_mail(2)]);
    let config = mailbox.config(&[mailbox.section().text("max_message_bytes", "16K")]);
    let output = fetch(&Dmarcpipe::on(&pool), &config);
    assert_eq!(code(&output), 1, "{}", stderr(&output));
    let summary = json(&output);
    assert_eq!((summary["stored"].as_u64(), summary["oversized"].as_u64()), (Some(2), Some(1)), "{summary}");
    let said = stderr(&output);
    assert!(said.contains(";UID=2 is larger than max_message_bytes: not fetched, moved to DMARC/Rejected"), "{said}");
    assert!(said.contains(&format!("size={}", big.len())), "{said}");
    assert_eq!(mailbox.messages("DMARC.Rejected"), vec![big.clone()]);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 2);

    // Left in place instead: one warning, however many times the folder is looked at.
    mailbox.append("INBOX", std::slice::from_ref(&big));
    let config = mailbox.config(&[mailbox
        .section()
        .text("max_message_bytes", "16K")
        .set("leave_oversized", "true")
        .set("idle", "false")
        .set("poll_seconds", "1")]);
    let dmarcpipe = Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&config));
    let mut served = Served::start_with(&dmarcpipe, &["serve"]);
    served.wait_for_log("not fetched, left in INBOX", Duration::from_secs(30));
    for serial in [3, 4] {
        mailbox.append("INBOX", &[report_mail(serial)]);
        // UIDs 1-3 went in the first run, 4 is the large one.
        served.wait_for_log(&format!("UID={} moved to DMARC/Archive", serial + 2), Duration::from_secs(30));
    }
    assert!(served.stop().success());
    // Not fetched: no input row for it.
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs").await, 4);
    assert_eq!(mailbox.messages("INBOX"), vec![big]);
}

/// A mailbox whose Dovecot also accepts OAuth tokens that `introspection` knows.
fn oauth_mailbox(introspection: &Introspection) -> Mailbox {
    Mailbox::start_with(&DovecotOptions {
        introspection_url: Some(introspection.url.clone()),
        ..DovecotOptions::default()
    })
}

#[sqlx::test]
async fn xoauth2_and_oauthbearer_with_a_token_command(pool: PgPool) {
    let introspection = Introspection::start();
    let mailbox = oauth_mailbox(&introspection);
    let (command, counter) = counting_token_command(mailbox.dir.path());
    let dmarcpipe = Dmarcpipe::on(&pool);
    for (serial, mechanism) in [(1, "xoauth2"), (2, "oauthbearer")] {
        introspection.accept(&format!("token-{serial}"));
        mailbox.append("INBOX", &[report_mail(serial)]);
        let section = mailbox.section().without("password").text("auth", mechanism).text("token_command", &command);
        let output = fetch(&dmarcpipe, &mailbox.config(&[section]));
        assert_eq!(code(&output), 0, "{mechanism}: {}", stderr(&output));
        assert_eq!(json(&output)["stored"], 1, "{mechanism}");
        assert_eq!(runs(&counter), serial as usize, "{mechanism}: one token per run");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);

    // A token the server refuses, fresh from the command: one clear error, no second run.
    mailbox.append("INBOX", &[report_mail(3)]);
    let section = mailbox.section().without("password").text("token_command", &command);
    let output = fetch(&dmarcpipe, &mailbox.config(&[section]));
    assert_eq!(code(&output), 2);
    let said = stderr(&output);
    assert!(said.contains("mailbox reports: login as dmarc@example.test refused by 127.0.0.1: NO"), "{said}");
    assert!(said.contains("\"status\":\"401\""), "the server's reason is quoted: {said}");
    assert_eq!(runs(&counter), 3);
    assert_eq!(mailbox.messages("INBOX").len(), 1);
}

#[sqlx::test]
async fn an_expired_token_makes_token_command_run_again(pool: PgPool) {
    let introspection = Introspection::start();
    let mailbox = oauth_mailbox(&introspection);
    let imap = ImapProxy::start(mailbox.dovecot.imap_port);
    let (command, counter) = counting_token_command(mailbox.dir.path());
    introspection.accept("token-1");
    let section = mailbox
        .section()
        .set("port", &imap.port.to_string())
        .without("password")
        .text("auth", "xoauth2")
        .text("token_command", &command);
    let dmarcpipe = Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&mailbox.config(&[section])));
    let mut served = Served::start_with(&dmarcpipe, &["serve"]);
    served.wait_for_log("watching INBOX", Duration::from_secs(30));
    mailbox.append("INBOX", &[report_mail(1)]);
    served.wait_for_log("UID=1 moved to DMARC/Archive", Duration::from_secs(30));
    assert_eq!(runs(&counter), 1);

    // The token expires; the connection breaks; the poller logs in again with the token it
    // kept, which is refused, so it asks token_command for a new one.
    introspection.revoke("token-1");
    introspection.accept("token-2");
    imap.cut();
    wait_until("a second login", Duration::from_secs(60), || {
        served.log().iter().filter(|line| line.contains("watching INBOX")).count() == 2
    });
    assert_eq!(runs(&counter), 2);
    mailbox.append("INBOX", &[report_mail(2)]);
    served.wait_for_log("UID=2 moved to DMARC/Archive", Duration::from_secs(30));
    assert!(served.stop().success());
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);
}

#[sqlx::test]
async fn starttls_and_implicit_tls_with_a_ca_file(pool: PgPool) {
    let mailbox = Mailbox::start();
    let dmarcpipe = Dmarcpipe::on(&pool);
    let certificate = path(&mailbox.dovecot.certificate).to_owned();
    // 127.0.0.1 to 127.0.0.2: Dovecot refuses passwords there without TLS.
    let tls = |mode: &str, port: u16| {
        mailbox.section().text("host", "127.0.0.2").set("port", &port.to_string()).text("tls", mode)
    };
    mailbox.append("INBOX", &[report_mail(1)]);
    let output = fetch(&dmarcpipe, &mailbox.config(&[tls("none", mailbox.dovecot.imap_port)]));
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("LOGINDISABLED"), "{}", stderr(&output));

    for (serial, mode, port) in
        [(1, "starttls", mailbox.dovecot.imap_port), (2, "implicit", mailbox.dovecot.imaps_port)]
    {
        if serial > 1 {
            mailbox.append("INBOX", &[report_mail(serial)]);
        }
        let section = tls(mode, port).text("ca_file", &certificate);
        let output = fetch(&dmarcpipe, &mailbox.config(&[section]));
        assert_eq!(code(&output), 0, "{mode}: {}", stderr(&output));
        assert_eq!(json(&output)["stored"], 1, "{mode}");
    }
    let tls_logins = mailbox.dovecot.log().matches("TLS").count();
    assert!(tls_logins >= 2, "{}", mailbox.dovecot.log());

    // Without the CA file, the self-signed certificate is refused, and nothing is sent.
    mailbox.append("INBOX", &[report_mail(3)]);
    let output = fetch(&dmarcpipe, &mailbox.config(&[tls("implicit", mailbox.dovecot.imaps_port)]));
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("TLS with 127.0.0.2: invalid peer certificate"), "{}", stderr(&output));
    assert_eq!(mailbox.messages("INBOX").len(), 1);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);
}

#[sqlx::test]
async fn sigterm_finishes_the_batch_in_hand_and_logs_out(pool: PgPool) {
    let (mailbox, imap, messages, config) = proxied(3);
    imap.hold("UID MOVE", 1);
    let mut served = Served::start_with(&Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&config)), &["serve"]);
    imap.wait_holding(Duration::from_secs(60));
    served.terminate();
    served.wait_for_log("Shutting down", Duration::from_secs(30));
    // The move of the committed batch goes on after SIGTERM; then the session logs out.
    imap.release();
    assert!(served.wait(Duration::from_secs(60)).success());
    assert!(mailbox.messages("INBOX").is_empty());
    assert_eq!(mailbox.messages("DMARC.Archive"), messages);
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'stored'").await, 3);
    assert!(mailbox.dovecot.log().contains("Logged out"), "{}", mailbox.dovecot.log());
}

#[sqlx::test]
async fn a_recreated_folder_with_a_new_uidvalidity_is_read_again(pool: PgPool) {
    let mailbox = Mailbox::start();
    let mut client = mailbox.client();
    client.create("Reports").expect("created");
    client.append("Reports", &report_mail(1)).expect("appended");
    let config = mailbox.config(&[mailbox.section().text("folder", "Reports")]);
    let mut served = Served::start_with(&Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&config)), &["serve"]);
    served.wait_for_log("Reports;UIDVALIDITY=", Duration::from_secs(30));

    // The folder is deleted and made again: its UIDs start over under a new UIDVALIDITY.
    // Dovecot takes a new folder's UIDVALIDITY from the clock, in seconds: a folder made again
    // within the same second would get the same one.
    std::thread::sleep(Duration::from_millis(1100));
    client.command("DELETE \"Reports\"").expect("deleted");
    client.create("Reports").expect("created");
    // Dovecot may still be noticing the deletion in the session that watches the folder, and
    // answers `NO Mailbox was deleted under us` to an APPEND meanwhile: try again.
    let appended = (0..50).any(|_| {
        let done = client.append("Reports", &report_mail(2)).is_ok();
        if !done {
            std::thread::sleep(Duration::from_millis(100));
        }
        done
    });
    assert!(appended, "the message was appended to the new folder");
    client.logout();
    served.wait_for_log("UIDVALIDITY of Reports changed", Duration::from_secs(60));
    wait_until("the new message is stored", Duration::from_secs(60), || {
        served.log().iter().filter(|line| line.contains(";UID=1 moved to DMARC/Archive")).count() == 2
    });
    assert!(served.stop().success());
    let origins: Vec<String> =
        sqlx::query_scalar("SELECT origin FROM dmarc_inputs ORDER BY id").fetch_all(&pool).await.expect("origins");
    assert_eq!(origins.len(), 2);
    assert!(origins.iter().all(|origin| origin.ends_with(";UID=1")), "{origins:?}");
    assert_ne!(origins[0], origins[1], "the UIDVALIDITY tells them apart");
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);
}

#[sqlx::test]
async fn servers_without_move_or_uidplus(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let mut serial = 0;
    // No MOVE (so COPY, \Deleted, UID EXPUNGE), and then no UIDPLUS either (so EXPUNGE); a
    // folder name that needs modified UTF-7.
    for (capabilities, archive, server_name) in [
        ("IMAP4rev1 IDLE NAMESPACE UIDPLUS", "Rapports/Reçus", "Rapports.Re&AOc-us"),
        ("IMAP4rev1 IDLE NAMESPACE", "DMARC/Archive", "DMARC.Archive"),
    ] {
        let mailbox = Mailbox::start_with(&DovecotOptions {
            capabilities: Some(capabilities.into()),
            ..DovecotOptions::default()
        });
        let messages: Vec<Vec<u8>> = (0..3).map(|_| report_mail(next(&mut serial))).collect();
        mailbox.append("INBOX", &messages);
        let output = fetch(&dmarcpipe, &mailbox.config(&[mailbox.section().text("archive_folder", archive)]));
        assert_eq!(code(&output), 0, "{capabilities}: {}", stderr(&output));
        assert_eq!(json(&output)["stored"], 3, "{capabilities}");
        assert!(mailbox.messages("INBOX").is_empty(), "{capabilities}");
        assert_eq!(mailbox.messages(server_name), messages, "{capabilities}");

        // delete = true: flagged \Deleted and expunged.
        mailbox.append("INBOX", &[report_mail(next(&mut serial))]);
        let section = mailbox.section().text("archive_folder", archive).set("delete", "true");
        let output = fetch(&dmarcpipe, &mailbox.config(&[section]));
        assert_eq!(json(&output)["stored"], 1, "{capabilities}: {}", stderr(&output));
        assert!(mailbox.messages("INBOX").is_empty(), "{capabilities}");
        assert_eq!(mailbox.messages(server_name).len(), 3, "{capabilities}");
    }
    assert_eq!(count(&pool, "SELECT count(*) FROM dmarc_reports").await, 8);
}

fn next(serial: &mut u32) -> u32 {
    *serial += 1;
    *serial
}
