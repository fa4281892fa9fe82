//! `dmarcpipe serve` end to end, with real clients on loopback: swaks (Debian) and the lettre
//! crate, plus a raw client for what real clients will not do (hang up mid-DATA). Each test
//! runs the binary against its own fresh database and checks what was committed.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::smtp::{DatabaseProxy, RUA, RawClient, Served, Swaks};
use common::{Dmarcpipe, Sealing, code, path, root, scalar};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng, base64, gzip, mail_with_attachment, smtp_data};
use lettre::AsyncTransport;
use sqlx::PgPool;

fn sample(name: &str) -> PathBuf {
    root().join("samples").join(name)
}

/// The channel, origin and outcome of every input, oldest first.
async fn inputs(pool: &PgPool) -> Vec<(String, String, String)> {
    sqlx::query_as("SELECT channel, origin, outcome FROM dmarc_inputs ORDER BY id")
        .fetch_all(pool)
        .await
        .expect("inputs are readable")
}

fn lettre_client(server: std::net::SocketAddr, helo: &str) -> lettre::AsyncSmtpTransport<lettre::Tokio1Executor> {
    lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(server.ip().to_string())
        .port(server.port())
        .hello_name(lettre::transport::smtp::extension::ClientId::Domain(helo.to_owned()))
        .timeout(Some(Duration::from_secs(120)))
        .build()
}

/// A session in the middle of DATA with the Google sample: the client, and the rest of the
/// message's data (without the final dot).
fn halfway_through_data(server: std::net::SocketAddr) -> (RawClient, Vec<u8>) {
    let message = std::fs::read(sample("aggregate/google-zip-in-mail.eml")).expect("the sample");
    let mut data = smtp_data(&message);
    let mut client = RawClient::connect(server);
    client.start_data(RUA);
    let rest = data.split_off(data.len() / 2);
    client.send(&data);
    (client, rest)
}

fn envelope(from: &str, to: &str) -> lettre::address::Envelope {
    lettre::address::Envelope::new(Some(from.parse().expect("an address")), vec![to.parse().expect("an address")])
        .expect("an envelope")
}

#[sqlx::test]
async fn a_google_zip_report_is_stored_with_its_provenance_and_a_second_copy_is_a_duplicate(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let google = sample("aggregate/google-zip-in-mail.eml");
    let transcript = Swaks::to(served.smtp).data(&google).delivered();
    assert!(transcript.contains("<-  250 2.0.0 Stored as input 1: 1 report, 6 records"), "{transcript}");
    for offered in ["250-PIPELINING", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250 SIZE "] {
        assert!(transcript.contains(offered), "{offered} is offered: {transcript}");
    }
    assert_eq!(
        inputs(&pool).await,
        [(
            "smtp".to_owned(),
            "127.0.0.1 helo=mail-sor-f73.google.example from=<noreply-dmarc-support@google.example>".to_owned(),
            "stored".to_owned()
        )]
    );
    let (records, messages): (i64, i64) = sqlx::query_as(
        "SELECT record_count::bigint, message_count FROM dmarc_reports WHERE org_name = 'google.example'",
    )
    .fetch_one(&pool)
    .await
    .expect("the report is stored");
    assert_eq!((records, messages), (6, 389));

    let again = Swaks::to(served.smtp).data(&google).delivered();
    assert!(again.contains("<-  250 2.0.0 A duplicate of input 1; recorded as input 2"), "{again}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'duplicate'").await, 1);

    let log = served.log();
    let line = log.iter().find(|line| line.contains("Message handled")).expect("a line per message");
    for field in ["channel=\"smtp\"", "origin=127.0.0.1", "input=", "outcome=\"stored\"", "reports=1", "records=6"] {
        assert!(line.contains(field), "{field} in {line}");
    }
    assert!(served.stop().success());
    // The rollups were written with the report.
    assert_eq!(
        scalar(&pool, "SELECT sum(messages)::bigint FROM aggregate_rollup_daily").await,
        scalar(&pool, "SELECT sum(message_count)::bigint FROM aggregate_records").await
    );
}

#[sqlx::test]
async fn a_damaged_report_mail_is_kept_once_and_acknowledged_as_a_duplicate_when_it_comes_again(pool: PgPool) {
    let sealing = Sealing::new();
    let served = Served::start(&sealing.dmarcpipe(&pool), &[]);
    let damaged = sample("aggregate/rejected/zip-part-not-zip.eml");
    let first = Swaks::to(served.smtp).data(&damaged).delivered();
    assert!(first.contains("<-  250 2.0.0 Kept as input 1, but not readable as a report: "), "{first}");
    assert!(first.contains("corrupt report attachment"), "{first}");
    // The sender retries (or another MX hands over the same message): a duplicate of the kept
    // input, acknowledged as any duplicate, and its bytes are not kept twice.
    let again = Swaks::to(served.smtp).data(&damaged).delivered();
    assert!(again.contains("<-  250 2.0.0 A duplicate of input 1; recorded as input 2"), "{again}");
    assert!(served.stop().success());
    let outcomes: Vec<String> = inputs(&pool).await.into_iter().map(|(_, _, outcome)| outcome).collect();
    assert_eq!(outcomes, ["rejected", "duplicate"]);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE payload_kept").await, 1);
}

#[sqlx::test]
async fn a_gzip_report_with_8bit_headers_is_stored_from_lettre(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let report = ReportBuilder::new("Mail.Ru", "mailru-8bit-1", "example.com", 1_793_491_200)
        .record("192.0.2.10", 7, "none", "pass", "pass")
        .record("198.51.100.3", 2, "reject", "fail", "fail");
    let attachment = base64(&gzip(report.xml().as_bytes()));
    // Raw UTF-8 in the headers, as Mail.ru and others send them (8BITMIME, no RFC 2047).
    let message = format!(
        "From: Почта Mail.Ru <dmarc_support@corp.mail.example>\r\nTo: {RUA}\r\n\
         Subject: Отчёт DMARC для example.com — Report-Id: mailru-8bit-1\r\nMIME-Version: 1.0\r\n\
         Content-Type: application/gzip; name=\"Отчёт.xml.gz\"\r\nContent-Disposition: attachment; filename=\"Отчёт.xml.gz\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n"
    );
    let client = lettre_client(served.smtp, "corp.mail.example");
    let response = client
        .send_raw(&envelope("dmarc_support@corp.mail.example", RUA), message.as_bytes())
        .await
        .expect("lettre delivers");
    let text = response.message().collect::<Vec<_>>().join(" ");
    assert!(response.is_positive() && text.contains("Stored as input 1: 1 report, 2 records"), "{text}");
    let (org, messages): (String, i64) =
        sqlx::query_as("SELECT org_name, message_count FROM dmarc_reports WHERE report_id = 'mailru-8bit-1'")
            .fetch_one(&pool)
            .await
            .expect("the report is stored");
    assert_eq!((org.as_str(), messages), ("Mail.Ru", 9));
    assert!(served.stop().success());
}

#[sqlx::test]
async fn a_forensic_report_is_sealed_as_on_import(pool: PgPool) {
    let sealing = Sealing::new();
    let dmarcpipe = sealing.dmarcpipe(&pool);
    let served = Served::start(&dmarcpipe, &[]);
    let arf = sample("forensic/google-arf.eml");
    let transcript = Swaks::to(served.smtp).rcpt("ruf+google@ruf.dmarc.example").data(&arf).delivered();
    assert!(transcript.contains("Stored as input 1: 1 report"), "{transcript}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_forensic WHERE sample_kept").await, 1);
    // The sample is sealed: no byte of the original's subject in the database, and the
    // identity opens it.
    let plaintext: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM forensic_samples WHERE position(convert_to('Invoice 2026-11', 'UTF8') IN sealed) > 0",
    )
    .fetch_one(&pool)
    .await
    .expect("samples are readable");
    assert_eq!(plaintext, 0);
    let id = scalar(&pool, "SELECT max(id) FROM dmarc_forensic").await.to_string();
    let shown = dmarcpipe.run(&["forensic", "show", &id, "-i", path(&sealing.identity)]);
    assert!(shown.status.success(), "{}", String::from_utf8_lossy(&shown.stderr));
    assert!(String::from_utf8_lossy(&shown.stdout).contains("Subject: Invoice 2026-11"));
    assert!(served.stop().success());
}

#[sqlx::test]
async fn a_pipelined_session_is_stored(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let transcript =
        Swaks::to(served.smtp).data(&sample("aggregate/amazonses-octet-stream.eml")).arg("--pipeline").delivered();
    // swaks sends MAIL, RCPT and DATA in one go when PIPELINING is offered.
    let mail = transcript.find(" -> MAIL FROM").expect("MAIL sent");
    let first_reply_after_mail = transcript[mail..].find("<-").expect("a reply");
    assert!(transcript[mail..mail + first_reply_after_mail].contains(" -> DATA"), "pipelined: {transcript}");
    assert!(transcript.contains("Stored as input 1"), "{transcript}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    assert!(served.stop().success());
}

#[sqlx::test]
async fn starttls_with_a_self_signed_certificate(pool: PgPool) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (certificate, key) = common::self_signed(dir.path(), "DNS:mx.dmarc.example");
    let served =
        Served::start(&Dmarcpipe::on(&pool), &["--tls-certificate", path(&certificate), "--tls-key", path(&key)]);
    let transcript = Swaks::to(served.smtp).data(&sample("aggregate/google-zip-in-mail.eml")).arg("--tls").delivered();
    assert!(transcript.contains("<-  250 STARTTLS") && transcript.contains("TLS started"), "{transcript}");

    let message = mail_with_attachment(
        "Report domain: example.org",
        "outlook.example!example.org!1793491200!1793577599.xml.gz",
        "application/gzip",
        &gzip(
            ReportBuilder::new("Outlook.example", "tls-1", "example.org", 1_793_491_200)
                .record("203.0.113.9", 4, "none", "pass", "fail")
                .xml()
                .as_bytes(),
        ),
    );
    let tls = lettre::transport::smtp::client::TlsParameters::builder("mx.dmarc.example".to_owned())
        .dangerous_accept_invalid_certs(true)
        .build_rustls()
        .expect("TLS parameters");
    let client = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous("127.0.0.1")
        .port(served.smtp.port())
        .tls(lettre::transport::smtp::client::Tls::Required(tls))
        .build();
    let response =
        client.send_raw(&envelope("dmarc@outlook.example", RUA), &message).await.expect("lettre delivers over TLS");
    assert!(response.is_positive());
    let origins: Vec<String> = inputs(&pool).await.into_iter().map(|(_, origin, _)| origin).collect();
    assert_eq!(origins.len(), 2);
    assert!(origins.iter().all(|origin| origin.ends_with(" tls")), "{origins:?}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);
    assert!(served.stop().success());
}

#[sqlx::test]
async fn a_relay_attempt_is_refused_with_550_and_ordinary_mail_is_recorded_as_not_report(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let (transcript, code) =
        Swaks::to(served.smtp).rcpt("someone@elsewhere.example").data(&sample("aggregate/fastmail.eml")).run();
    assert_ne!(code, 0, "{transcript}");
    assert!(transcript.contains("<** 550 5.1.1 <someone@elsewhere.example>"), "{transcript}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 0);

    // Mail to the report address that is no report (an HTML preview, a newsletter) is taken.
    let transcript = Swaks::to(served.smtp).data(&sample("aggregate/not-reports/human-reply.eml")).delivered();
    assert!(transcript.contains("<-  250 2.0.0 Not a DMARC report; recorded as input 1"), "{transcript}");
    assert_eq!(inputs(&pool).await[0].2, "not_report");
    assert!(served.stop().success());
}

#[sqlx::test]
async fn an_oversize_message_is_refused_with_552_and_the_session_goes_on(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &["--smtp-max-message-bytes", "16K"]);
    let dir = tempfile::tempdir().expect("a temp dir");
    let big = dir.path().join("big.eml");
    let filler = "x".repeat(70);
    let body: String = (0..400).map(|n| format!("{n:05} {filler}\n")).collect();
    std::fs::write(&big, format!("From: a@b.example\nSubject: big\n\n{body}")).expect("written");
    let (transcript, code) = Swaks::to(served.smtp).data(&big).run();
    assert_ne!(code, 0);
    assert!(transcript.contains("552 5.3.4 Message too big"), "{transcript}");
    assert!(transcript.contains("250-SIZE 16384") || transcript.contains("250 SIZE 16384"), "{transcript}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 0);

    // A client that declares the size is refused at MAIL already.
    let mut client = RawClient::connect(served.smtp);
    assert!(client.command("EHLO raw.client.example").starts_with("250 "));
    assert!(client.command("MAIL FROM:<a@b.example> SIZE=99999").starts_with("552 5.3.4"));
    // Too large for any integer (smtp-proto alone reads 21 digits of 9 as 9).
    assert!(client.command("MAIL FROM:<a@b.example> SIZE=999999999999999999999").starts_with("552 5.3.4"));
    assert!(client.command("MAIL FROM:<a@b.example> SIZE=999").starts_with("250 "));
    assert!(client.command("QUIT").starts_with("221 "));

    Swaks::to(served.smtp).data(&sample("aggregate/fastmail.eml")).delivered();
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 1);
    assert!(served.stop().success());
}

#[sqlx::test]
async fn a_client_that_hangs_up_mid_data_leaves_nothing(pool: PgPool) {
    let mut served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let (client, _) = halfway_through_data(served.smtp);
    drop(client);
    served.wait_for_log("client went away during DATA; nothing stored", Duration::from_secs(30));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 0);
    assert!(served.stop().success());
}

#[sqlx::test]
async fn lmtp_answers_once_per_recipient_and_stores_once(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let (transcript, code) = Swaks::to(served.lmtp.expect("an LMTP listener"))
        .rcpt(&format!("{RUA},rua@ruf.dmarc.example"))
        .data(&sample("aggregate/forwarded.eml"))
        .arg("--protocol")
        .arg("LMTP")
        .run();
    assert_eq!(code, 0, "{transcript}");
    assert!(transcript.contains(" -> LHLO "), "{transcript}");
    assert_eq!(transcript.matches("<-  250 2.0.0 Stored as input 1").count(), 2, "{transcript}");
    assert_eq!(inputs(&pool).await.iter().map(|(channel, ..)| channel.as_str()).collect::<Vec<_>>(), ["lmtp"]);
    assert!(served.stop().success());
}

#[sqlx::test]
async fn the_database_going_away_mid_delivery_gives_451_and_the_retry_is_stored_once(pool: PgPool) {
    let proxy = DatabaseProxy::start(&pool);
    let dmarcpipe = Dmarcpipe::on(&pool).env("DATABASE_URL", &proxy.url(&pool));
    let served = Served::start(&dmarcpipe, &[]);
    let message = std::fs::read(sample("aggregate/google-zip-in-mail.eml")).expect("the sample");
    let data = smtp_data(&message);

    let mut client = RawClient::connect(served.smtp);
    client.start_data(RUA);
    client.send(&data);
    proxy.cut();
    client.send(b".\r\n");
    let reply = client.reply();
    assert!(reply.starts_with("451 4.3.0 "), "{reply}");
    assert!(client.command("QUIT").starts_with("221 "));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 0, "nothing was acknowledged");

    // The sending MTA retries once the database is back.
    proxy.restore();
    let transcript = Swaks::to(served.smtp).data(&sample("aggregate/google-zip-in-mail.eml")).delivered();
    assert!(transcript.contains("Stored as input"), "{transcript}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    assert_eq!(scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await, 389);
    assert!(served.stop().success());
}

#[sqlx::test]
async fn sigterm_lets_a_message_in_data_finish_and_exits_0(pool: PgPool) {
    let mut served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let (mut client, rest) = halfway_through_data(served.smtp);
    served.terminate();
    served.wait_for_log("Shutting down", Duration::from_secs(30));
    // No new sessions once shutdown began.
    let refused = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        std::net::TcpStream::connect(served.smtp).is_err()
    });
    assert!(refused, "the listener is closed");
    client.send(&rest);
    client.send(b".\r\n");
    let reply = client.reply();
    assert!(reply.starts_with("250 2.0.0 Stored as input 1"), "{reply}");
    client.send(b"NOOP\r\n");
    assert!(client.rest().starts_with("421 4.3.2 "), "told to come back later");
    assert!(served.wait(Duration::from_secs(60)).success());
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
}

#[sqlx::test]
async fn a_200000_record_report_does_not_hold_up_a_small_one(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let big =
        ReportBuilder::new("Big ESP", "big-1", "example.com", 1_793_491_200).random_records(200_000, &mut Rng(0x5eed));
    let message = mail_with_attachment(
        "Report domain: example.com Submitter: big-esp.example",
        "big-esp!example.com!1793491200!1793577599.xml.gz",
        "application/gzip",
        &gzip(big.xml().as_bytes()),
    );
    let mut large = RawClient::connect(served.smtp);
    large.start_data(RUA);
    large.send(&smtp_data(&message));
    large.send(b".\r\n");

    // While the large one is being stored, a small one on another connection goes through.
    Swaks::to(served.smtp).data(&sample("aggregate/fastmail.eml")).delivered();
    assert!(!large.has_reply_waiting(), "the small message was stored before the large one");
    let reply = large.reply();
    assert!(reply.starts_with("250 2.0.0 Stored as input") && reply.ends_with("200000 records"), "{reply}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records WHERE report_id = 'big-1'").await, 200_000);
    assert!(served.stop().success());
}

/// `dmarcpipe serve` with `config` as its configuration file and no flags; the directory of the
/// file goes with the server.
fn serve_with_config(pool: &PgPool, config: &str) -> (tempfile::TempDir, Served) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = dir.path().join("dmarcpipe.toml");
    std::fs::write(&file, config).expect("written");
    let served = Served::start_with(&Dmarcpipe::on(pool).env("DMARCPIPE_CONFIG", path(&file)), &["serve"]);
    (dir, served)
}

#[sqlx::test]
async fn the_smtp_section_of_the_config_file_sets_addresses_and_caps(pool: PgPool) {
    let (_dir, served) = serve_with_config(
        &pool,
        "[smtp]\nlisten = [\"127.0.0.1:0\"]\nhostname = \"mx.config.example\"\n\
         recipients = [\"rua@config.example\"]\nmax_sessions_per_ip = 2\n",
    );
    assert!(served.lmtp.is_none());
    let first = RawClient::connect(served.smtp);
    let second = RawClient::connect(served.smtp);
    // A third session from the same address is turned away with a code that says "later".
    let mut third = std::net::TcpStream::connect(served.smtp).expect("connects");
    let mut refusal = String::new();
    std::io::Read::read_to_string(&mut third, &mut refusal).expect("readable");
    assert!(refusal.starts_with("421 4.3.2 Too many connections"), "{refusal}");
    for client in [first, second] {
        let mut client = client;
        assert!(client.command("QUIT").starts_with("221 "));
        client.rest();
    }

    // Once they are gone (the server notices at its own pace), a new session is welcome, and
    // only the configured address is.
    let mut client = (0..500)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(10));
            RawClient::try_connect(served.smtp).ok()
        })
        .expect("a session once the others ended");
    assert!(client.greeting.starts_with("220 mx.config.example ESMTP"), "{}", client.greeting);
    assert!(client.command("EHLO raw.client.example").starts_with("250 "));
    assert!(client.command("MAIL FROM:<dmarc@fastmail.example>").starts_with("250 "));
    assert!(client.command(&format!("RCPT TO:<{RUA}>")).starts_with("550 5.1.1 "));
    assert!(client.command("RCPT TO:<rua@config.example>").starts_with("250 "));
    assert!(client.command("DATA").starts_with("354 "));
    let message = std::fs::read(sample("aggregate/fastmail.eml")).expect("the sample");
    client.send(&smtp_data(&message));
    let reply = client.command(".");
    assert!(reply.starts_with("250 2.0.0 Stored as input 1"), "{reply}");
    assert!(served.stop().success());
}

/// Sends `step(i)` every 100 ms, `steps` times, reading the replies as they come; the first
/// `421` and the number of steps sent before it, or `None` if the script ran out first.
fn send_slowly(client: &mut RawClient, steps: usize, step: impl Fn(usize) -> &'static [u8]) -> Option<(usize, String)> {
    for sent in 0..steps {
        client.send(step(sent));
        std::thread::sleep(Duration::from_millis(100));
        while client.has_reply_waiting() {
            let reply = client.reply();
            if reply.starts_with("421 ") {
                return Some((sent + 1, reply));
            }
        }
    }
    None
}

#[sqlx::test]
async fn clients_that_trickle_bytes_are_cut_off_by_the_line_and_session_deadlines(pool: PgPool) {
    let (_dir, served) = serve_with_config(
        &pool,
        &format!(
            "[smtp]\nlisten = [\"127.0.0.1:0\"]\nrecipients = [\"{RUA}\"]\ncommand_timeout_seconds = 2\n\
             data_timeout_seconds = 1\nsession_timeout_seconds = 3\n"
        ),
    );

    // One byte every 100 ms and never a line end (30 s of script): each byte used to restart
    // the command timeout, so this client held its session for as long as it liked.
    let mut dribbler = RawClient::connect(served.smtp);
    let (sent, reply) = send_slowly(&mut dribbler, 300, |_| b"x").expect("cut off before the script ends");
    assert_eq!(reply, "421 4.4.2 Timeout waiting for a command, closing the connection");
    assert!(sent < 300);
    assert_eq!(dribbler.rest(), "", "and the connection is closed");

    // Complete commands in good time, for ever: the session lifetime (3 s + 1 s here) ends it.
    let mut chatter = RawClient::connect(served.smtp);
    let (sent, reply) = send_slowly(&mut chatter, 300, |_| b"NOOP\r\n").expect("cut off before the script ends");
    assert_eq!(reply, "421 4.4.2 Session time limit reached, closing the connection");
    assert!(sent < 300);
    assert_eq!(chatter.rest(), "");

    // The server is as available as before.
    let transcript = Swaks::to(served.smtp).data(&sample("aggregate/fastmail.eml")).delivered();
    assert!(transcript.contains("Stored as input 1"), "{transcript}");
    assert!(served.stop().success());
}

#[test]
fn serve_refuses_a_setup_it_cannot_run_and_says_why() {
    let dmarcpipe = Dmarcpipe::without_database();
    let cases: [(&[&str], &str); 5] = [
        (&["--smtp-listen", "127.0.0.1:0"], "no recipient address or domain configured"),
        (&["--smtp-recipient", RUA], "nowhere to listen: pass --smtp-listen ADDR"),
        (&["--smtp-listen", "127.0.0.1:0", "--smtp-recipient", "reports"], "`reports` is neither an address"),
        (
            &["--smtp-listen", "127.0.0.1:0", "--smtp-recipient", RUA, "--tls-certificate", "/nonexistent/cert.pem"],
            "STARTTLS needs both a certificate and a key",
        ),
        (
            &[
                "--smtp-listen",
                "127.0.0.1:0",
                "--smtp-recipient",
                RUA,
                "--tls-certificate",
                "/nonexistent/cert.pem",
                "--tls-key",
                "/nonexistent/key.pem",
            ],
            "cannot set up STARTTLS: /nonexistent/cert.pem:",
        ),
    ];
    for (args, expected) in cases {
        let output = dmarcpipe.run(&[&["serve"], args].concat());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(code(&output), 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: `{expected}` in {stderr}");
    }
}
