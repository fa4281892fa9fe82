//! `dmarcpipe digest` end to end: reports imported into the test's database, the binary sends
//! the digest to a real SMTP server on loopback (the project's own SMTP server,
//! `dmarcpipe_ingest::intake::smtp`, with a delivery that keeps each message instead of
//! storing reports; with STARTTLS when a certificate is given), and what arrived is parsed
//! with mail-parser and compared with the rollups as `dmarcpipe report` prints them.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use common::{Dmarcpipe, code, path};
use dmarcpipe_ingest::intake::smtp::{Deliver, Delivery, Protocol, Recipients, Server, SmtpSettings, load_tls};
use dmarcpipe_ingest::testkit::ReportBuilder;
use dmarcpipe_ingest::{Envelope, Origin, Payload};
use mail_parser::{MessageParser, MimeHeaders};
use sqlx::PgPool;
use tokio::sync::watch;

const FROM: &str = "dmarc-digest@example.org";
const TO: [&str; 2] = ["postmaster@example.org", "Security Team <security@example.org>"];

/// Every message the sink received.
#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<Envelope>>>);

impl Deliver for Inbox {
    async fn deliver(&self, envelope: Envelope) -> Delivery {
        self.0.lock().expect("the inbox").push(envelope);
        Delivery::Accepted("Queued".to_owned())
    }
}

/// The project's SMTP server on 127.0.0.1, accepting mail for example.org only.
struct Sink {
    address: SocketAddr,
    inbox: Inbox,
    stop: watch::Sender<bool>,
}

impl Sink {
    async fn start(tls: Option<(&Path, &Path)>) -> Sink {
        let mut settings =
            SmtpSettings::new("relay.test".to_owned(), Recipients::parse(&["@example.org"]).expect("recipients"));
        settings.tls = tls.map(|(certificate, key)| load_tls(certificate, key).expect("the certificate loads"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
        let address = listener.local_addr().expect("an address");
        let inbox = Inbox::default();
        let server = Server::new(settings, inbox.clone());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(async move { server.run(vec![(listener, Protocol::Smtp)], stopped).await });
        Sink { address, inbox, stop }
    }

    fn received(&self) -> Vec<Envelope> {
        self.inbox.0.lock().expect("the inbox").clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Runs the binary off the runtime's thread (the sink runs on it).
async fn run(dmarcpipe: Dmarcpipe, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dmarcpipe.run(&args)
    })
    .await
    .expect("the command ran")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| (*arg).to_owned()).collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Seconds since the epoch of the start of the UTC day `days` before today.
fn days_ago(days: i64) -> u64 {
    let today = chrono::Utc::now().date_naive();
    let day = today - chrono::Duration::days(days);
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp() as u64
}

/// Reports of this week (1 and 3 days ago), of the week before (10 days ago), and of another
/// domain, imported with `dmarcpipe import`.
async fn import_reports(pool: &PgPool, dir: &Path) {
    let reports = [
        ReportBuilder::new("google.example", "g-1", "example.org", days_ago(1))
            .record("192.0.2.1", 100, "none", "pass", "pass")
            .record("198.51.100.7", 20, "quarantine", "fail", "fail"),
        ReportBuilder::new("outlook.example", "o-1", "example.org", days_ago(3))
            .record("192.0.2.1", 50, "none", "pass", "fail")
            .record("203.0.113.5", 5, "none", "fail", "pass")
            .record("198.51.100.7", 7, "reject", "fail", "fail"),
        ReportBuilder::new("google.example", "g-0", "example.org", days_ago(10))
            .record("192.0.2.1", 80, "none", "pass", "pass")
            .record("198.51.100.7", 40, "none", "fail", "fail"),
        ReportBuilder::new("google.example", "g-2", "other.example", days_ago(1)).record(
            "192.0.2.99",
            30,
            "reject",
            "fail",
            "fail",
        ),
    ];
    for report in &reports {
        std::fs::write(dir.join(format!("{}.xml", report.file_stem())), report.xml()).expect("written");
    }
    let output = Dmarcpipe::on(pool).run(&["import", "--quiet", path(dir)]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
}

/// `dmarcpipe report --by KEY` over the digest's week, as JSON rows.
fn report(pool: &PgPool, by: &str, format: &str) -> String {
    let output = Dmarcpipe::on(pool).run(&[
        "report",
        "--by",
        by,
        "--domain",
        "example.org",
        "--since",
        "7d",
        "--until",
        "today",
        "--format",
        format,
    ]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The text of the first element after `marker` in `html` (`data-figure="messages"`).
fn text_after(html: &str, marker: &str) -> String {
    let at = html.find(marker).unwrap_or_else(|| panic!("{marker} in the HTML body"));
    let start = at + html[at..].find('>').expect("the tag ends") + 1;
    let end = start + html[start..].find('<').expect("the text ends");
    html[start..end].to_owned()
}

/// The cells of the table row `data-row="KEY"` of the table `data-table="NAME"`.
fn row_cells(html: &str, table: &str, key: &str) -> Vec<String> {
    let table_at = html.find(&format!("data-table=\"{table}\"")).expect("the table");
    let row_at = table_at + html[table_at..].find(&format!("data-row=\"{key}\"")).expect("the row");
    let row = &html[row_at..row_at + html[row_at..].find("</tr>").expect("the row ends")];
    row.split("<td").skip(1).map(|cell| text_after(cell, "")).collect()
}

fn with_thousands(value: i64) -> String {
    let digits = value.to_string();
    let mut text = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

#[sqlx::test]
async fn the_weekly_digest_arrives_with_the_rollups_figures_a_plain_alternative_and_attachments(pool: PgPool) {
    let dir = tempfile::tempdir().expect("a temp dir");
    import_reports(&pool, dir.path()).await;
    let sink = Sink::start(None).await;
    let port = sink.address.port().to_string();
    let output = run(
        Dmarcpipe::on(&pool),
        args(&[
            "-v",
            "digest",
            "--to",
            TO[0],
            "--to",
            TO[1],
            "--domain",
            "example.org",
            "--period",
            "week",
            "--relay",
            "127.0.0.1",
            "--port",
            &port,
            "--tls",
            "none",
            "--from",
            FROM,
        ]),
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let log = stderr(&output);
    assert!(log.contains("Digest sent.") && log.contains(&format!("relay=127.0.0.1:{port}")), "{log}");
    assert!(log.contains("reply=2.0.0 Queued"), "{log}");

    let received = sink.received();
    assert_eq!(received.len(), 1, "one message for both recipients");
    let Origin::Smtp { mail_from, tls, .. } = &received[0].origin else { panic!("an SMTP origin") };
    assert_eq!((mail_from.as_str(), *tls), (FROM, false));
    let Payload::Bytes(bytes) = &received[0].payload else { panic!("the message in memory") };
    let message = MessageParser::default().parse(bytes).expect("the message parses");

    let to: Vec<&str> =
        message.to().expect("To").iter().map(|address| address.address().expect("an address")).collect();
    assert_eq!(to, ["postmaster@example.org", "security@example.org"]);
    let subject = message.subject().expect("a subject");
    assert!(subject.starts_with("DMARC digest for example.org, week "), "{subject}");

    // The figures of the week, from the rollups: `report --by result` says how many messages
    // passed and failed.
    let results: Vec<serde_json::Value> = serde_json::from_str(&report(&pool, "result", "json")).expect("JSON");
    let messages_of = |result: &str| -> i64 {
        results.iter().find(|row| row["result"] == result).map_or(0, |row| row["messages"].as_i64().expect("a count"))
    };
    let (pass, fail) = (messages_of("pass"), messages_of("fail"));
    assert_eq!((pass, fail), (155, 27), "the data of this test: 100 + 50 + 5 pass, 20 + 7 fail");
    let compliance = format!("{:.1}%", pass as f64 * 100.0 / (pass + fail) as f64);
    assert!(subject.contains(&format!("{} messages, {compliance} DMARC compliant", pass + fail)), "{subject}");

    let html = message.body_html(0).expect("an HTML part").into_owned();
    let lowered = html.to_ascii_lowercase();
    for banned in ["<svg", "<style", "<script", "<img", "<link", "class="] {
        assert!(!lowered.contains(banned), "{banned} in the HTML body");
    }
    assert_eq!(text_after(&html, r#"data-figure="messages""#), with_thousands(pass + fail));
    assert_eq!(text_after(&html, r#"data-figure="compliance""#), compliance);
    assert_eq!(text_after(&html, r#"data-figure="reports""#), "2");
    assert_eq!(text_after(&html, r#"data-figure="reporters""#), "2");
    // Against the week before: 120 messages, 80 compliant.
    assert!(html.contains(&format!("+{} (+{:.1}%)", pass + fail - 120, (pass + fail - 120) as f64 * 100.0 / 120.0)));
    assert_eq!(row_cells(&html, "results", "pass")[1], with_thousands(pass));
    assert_eq!(row_cells(&html, "results", "fail")[1], with_thousands(fail));
    let top = row_cells(&html, "top-sources", "192.0.2.1");
    assert_eq!((top[0].as_str(), top[1].as_str()), ("192.0.2.1", "150"));
    let failing = row_cells(&html, "failing-sources", "198.51.100.7");
    assert_eq!(&failing[..4], ["example.org", "198.51.100.7", "27", "0"]);
    assert!(html.contains("198.51.100.7 sent 27 messages for example.org that failed DMARC"), "what to fix");
    // Readiness: two days of reports that publish p=reject, too few messages for a verdict.
    assert!(
        html.contains(&format!("example.org: too little mail for a verdict (fewer than 1,000 messages) ({compliance} of 182 messages compliant over 2 days, published p=reject).")),
        "readiness"
    );
    assert!(!html.contains("other.example") && !html.contains("192.0.2.99"), "--domain filters");

    let text = message.body_text(0).expect("a text part");
    assert!(text.contains(&format!("DMARC compliance: {compliance}")), "{text}");
    assert!(text.contains("198.51.100.7 sent 27 messages"), "{text}");

    // The rollups attached are those `report --format csv` prints for the same week; the full
    // visual report and its PDF summary come with them.
    let attachments: Vec<(String, Vec<u8>)> = message
        .attachments()
        .map(|part| (part.attachment_name().expect("a file name").to_owned(), part.contents().to_vec()))
        .collect();
    let names: Vec<&str> = attachments.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for (by, name) in
        [("day", "by-day.csv"), ("source", "by-source.csv"), ("org", "by-org.csv"), ("domain", "by-domain.csv")]
    {
        let (_, contents) = attachments.iter().find(|(file, _)| file.ends_with(name)).expect("attached");
        assert_eq!(String::from_utf8_lossy(contents), report(&pool, by, "csv"), "{name}");
    }
    let attached = |extension: &str| {
        attachments
            .iter()
            .find(|(file, _)| file.ends_with(extension))
            .map(|(_, bytes)| bytes.clone())
            .expect("attached")
    };
    let page = String::from_utf8(attached(".html")).expect("UTF-8");
    assert!(page.contains(&format!(r#"data-figure="messages">{}<"#, with_thousands(pass + fail))), "the report");
    assert!(page.contains("<svg"), "the full report with its charts");
    assert!(attached(".pdf").starts_with(b"%PDF-"), "the PDF summary");
}

/// Without Chromium the digest goes out without the PDF, and says so.
#[sqlx::test]
async fn the_digest_without_chromium_says_the_pdf_is_missing(pool: PgPool) {
    let dir = tempfile::tempdir().expect("a temp dir");
    import_reports(&pool, dir.path()).await;
    let sink = Sink::start(None).await;
    let port = sink.address.port().to_string();
    let empty = tempfile::tempdir().expect("a directory");
    let dmarcpipe = Dmarcpipe::on(&pool).env("PATH", path(empty.path())).env("DMARCPIPE_CHROMIUM", "");
    let output = run(
        dmarcpipe,
        args(&["digest", "--to", TO[0], "--relay", "127.0.0.1", "--port", &port, "--tls", "none", "--from", FROM]),
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = sink.received();
    let Payload::Bytes(bytes) = &received[0].payload else { panic!("the message in memory") };
    let message = MessageParser::default().parse(bytes).expect("the message parses");
    let names: Vec<String> =
        message.attachments().map(|part| part.attachment_name().expect("a name").to_owned()).collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().any(|name| name.ends_with(".html")) && !names.iter().any(|name| name.ends_with(".pdf")));
    let html = message.body_html(0).expect("an HTML part").into_owned();
    assert!(html.contains("The PDF summary is not attached") && html.contains("apt-get install chromium"), "{html}");
}

/// A config file whose `[digest]` points at `relay`, with these extra lines.
fn config(dir: &Path, relay: SocketAddr, extra: &str) -> PathBuf {
    let file = dir.join("dmarcpipe.toml");
    std::fs::write(
        &file,
        format!(
            "[digest]\nrelay = \"{}\"\nport = {}\nfrom = \"DMARC digest <{FROM}>\"\nto = [\"{}\"]\n{extra}",
            relay.ip(),
            relay.port(),
            TO[0]
        ),
    )
    .expect("written");
    file
}

#[sqlx::test]
async fn starttls_to_a_relay_trusted_through_ca_file(pool: PgPool) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (certificate, key) = common::self_signed(dir.path(), "IP:127.0.0.1");
    let sink = Sink::start(Some((&certificate, &key))).await;
    let file = config(dir.path(), sink.address, "tls = \"starttls\"\nca_file = \"cert.pem\"\n");
    let output =
        run(Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&file)), args(&["digest", "--period", "day"])).await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let Origin::Smtp { tls, .. } = &received[0].origin else { panic!("an SMTP origin") };
    assert!(tls, "the message came over TLS");
    let Payload::Bytes(bytes) = &received[0].payload else { panic!("the message in memory") };
    let message = MessageParser::default().parse(bytes).expect("the message parses");
    assert!(message.subject().expect("a subject").ends_with(": no aggregate reports"));
    assert!(message.body_text(0).expect("text").contains("No aggregate report covers this period."));
}

#[sqlx::test]
async fn relay_errors_name_the_relay(pool: PgPool) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (certificate, key) = common::self_signed(dir.path(), "IP:127.0.0.1");

    // STARTTLS required, but the relay does not offer it: nothing is sent in clear.
    let plain = Sink::start(None).await;
    let file = config(dir.path(), plain.address, "tls = \"starttls\"\n");
    let output = run(Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&file)), args(&["digest"])).await;
    let relay = format!("SMTP relay 127.0.0.1:{} (tls = starttls)", plain.address.port());
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains(&relay), "{}", stderr(&output));
    assert!(stderr(&output).to_ascii_lowercase().contains("starttls"), "{}", stderr(&output));
    assert!(plain.received().is_empty());

    // A certificate nobody vouches for (no ca_file).
    let tls = Sink::start(Some((&certificate, &key))).await;
    let file = config(dir.path(), tls.address, "tls = \"starttls\"\n");
    let output = run(Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&file)), args(&["digest"])).await;
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains(&format!("127.0.0.1:{}", tls.address.port())), "{}", stderr(&output));
    assert!(stderr(&output).contains("certificate"), "{}", stderr(&output));
    assert!(tls.received().is_empty());

    // A bad TLS mode names the setting and the value.
    let file = config(dir.path(), tls.address, "tls = \"ssl\"\n");
    let output = run(Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&file)), args(&["digest"])).await;
    assert_eq!(code(&output), 2);
    assert!(
        stderr(&output).contains("[digest] tls (or DMARCPIPE_DIGEST_TLS): `ssl` is not one of none, starttls, tls")
    );

    // Nobody listening: a temporary failure (75) naming the relay.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        listener.local_addr().expect("an address")
    };
    let file = config(dir.path(), closed, "tls = \"none\"\n");
    let output = run(Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&file)), args(&["digest"])).await;
    assert_eq!(code(&output), 75, "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains(&format!("SMTP relay 127.0.0.1:{} (tls = none)", closed.port())), "{message}");
    assert!(message.to_ascii_lowercase().contains("connection refused"), "{message}");

    // A recipient that is no address is named before anything is sent.
    let output = run(
        Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&file)),
        args(&["digest", "--to", "postmaster at example.org"]),
    )
    .await;
    assert_eq!(code(&output), 2);
    assert!(stderr(&output).contains("recipient --to `postmaster at example.org` is not an e-mail address"));
}
