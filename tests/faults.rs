//! The database going away in the middle of work, through a proxy that can cut it (a crash:
//! connections reset) or freeze it (connections open, nothing answered). `import` must stop
//! within its statement timeout rather than waiting for ever, `serve` must answer `451` within
//! its store timeout, and once the database is back every report is stored exactly once.
//!
//! The deadlines asserted here are hang detectors, far above what the timeouts configured for
//! the test allow; they measure nothing.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::smtp::{DatabaseProxy, RUA, RawClient, Served};
use common::{Dmarcpipe, code, path, scalar};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng, gzip, mail_with_attachment, smtp_data};
use sqlx::PgPool;

const NOV_2: u64 = 1_793_577_600; // 2026-11-02T00:00:00Z

/// Far above the 2-second timeouts of these tests: a run that takes longer hangs.
const HANG: Duration = Duration::from_secs(90);

/// `count` small report files in a temporary directory.
fn reports(count: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut rng = Rng(7);
    for serial in 0..count {
        let xml = ReportBuilder::new("reporter.example", &format!("fault-{serial}"), "example.com", NOV_2)
            .random_records(2, &mut rng)
            .xml();
        std::fs::write(dir.path().join(format!("{serial:05}.xml")), xml).expect("written");
    }
    dir
}

/// A config file with short database timeouts.
fn config(dir: &tempfile::TempDir, extra: &str) -> String {
    let file = dir.path().join("dmarcpipe.toml");
    std::fs::write(&file, format!("database_timeout_seconds = 2\n{extra}")).expect("written");
    path(&file).to_owned()
}

fn spawn_import(dmarcpipe: &Dmarcpipe, dir: &std::path::Path) -> Child {
    dmarcpipe
        .command(&["import", "--quiet", "--jobs", "1", path(dir)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dmarcpipe import starts")
}

/// Waits for `child` (killing it past `HANG`); its exit code and stderr.
fn finish(mut child: Child) -> (i32, String) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waitable") {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("readable");
            return (status.code().unwrap_or(-1), stderr);
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("still running after {HANG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until at least `inputs` inputs are committed.
async fn wait_for_inputs(pool: &PgPool, inputs: i64) {
    let started = Instant::now();
    while scalar(pool, "SELECT count(*) FROM inputs").await < inputs {
        assert!(started.elapsed() < HANG, "no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Every file's report is stored exactly once, and the second run accounted for every file.
async fn assert_each_report_once(pool: &PgPool, files: i64) {
    assert_eq!(scalar(pool, "SELECT count(*) FROM dmarc_reports").await, files);
    assert_eq!(scalar(pool, "SELECT count(DISTINCT report_id) FROM dmarc_reports").await, files);
    assert_eq!(
        scalar(pool, "SELECT sum(messages)::bigint FROM dmarc_daily").await,
        scalar(pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await
    );
}

async fn the_import_stops_and_a_second_run_completes(pool: PgPool, freeze: bool) {
    const FILES: u64 = 3_000;
    let dir = reports(FILES);
    let proxy = DatabaseProxy::start(&pool);
    let settings = tempfile::tempdir().expect("a temp dir");
    let dmarcpipe =
        Dmarcpipe::on(&pool).env("DATABASE_URL", &proxy.url(&pool)).env("DMARCPIPE_CONFIG", &config(&settings, ""));
    let import = spawn_import(&dmarcpipe, dir.path());
    wait_for_inputs(&pool, 50).await;
    if freeze {
        proxy.freeze();
    } else {
        proxy.cut();
    }
    let (status, stderr) = finish(import);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("import stopped"), "{stderr}");
    assert!(scalar(&pool, "SELECT count(*) FROM inputs").await < FILES as i64, "it stopped part-way");

    if freeze {
        proxy.thaw();
    } else {
        proxy.restore();
    }
    let (status, stderr) = finish(spawn_import(&dmarcpipe, dir.path()));
    assert_eq!(status, 0, "{stderr}");
    assert_each_report_once(&pool, FILES as i64).await;
}

#[sqlx::test]
async fn an_import_stops_when_the_database_crashes_and_the_next_run_stores_each_report_once(pool: PgPool) {
    the_import_stops_and_a_second_run_completes(pool, false).await;
}

#[sqlx::test]
async fn an_import_stops_when_the_database_freezes_and_the_next_run_stores_each_report_once(pool: PgPool) {
    the_import_stops_and_a_second_run_completes(pool, true).await;
}

#[sqlx::test]
async fn an_import_from_stdin_says_try_later_when_the_database_freezes(pool: PgPool) {
    let proxy = DatabaseProxy::start(&pool);
    let settings = tempfile::tempdir().expect("a temp dir");
    let dmarcpipe =
        Dmarcpipe::on(&pool).env("DATABASE_URL", &proxy.url(&pool)).env("DMARCPIPE_CONFIG", &config(&settings, ""));
    // Migrated while the database answers; then it freezes.
    assert_eq!(code(&dmarcpipe.run(&["migrate"])), 0);
    proxy.freeze();
    let xml = ReportBuilder::new("reporter.example", "stdin-1", "example.com", NOV_2)
        .record("192.0.2.1", 3, "none", "pass", "pass")
        .xml();
    let mut child = dmarcpipe
        .command(&["import", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), xml.as_bytes()).expect("written");
    let (status, stderr) = finish(child);
    assert_eq!(status, 75, "EX_TEMPFAIL: the MTA keeps the message: {stderr}");
    proxy.thaw();
    let output = dmarcpipe.run_with_stdin(&["import", "-"], xml.as_bytes());
    assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
}

#[sqlx::test]
async fn serve_answers_451_in_time_when_the_database_freezes_and_stores_the_retry_once(pool: PgPool) {
    let proxy = DatabaseProxy::start(&pool);
    let settings = tempfile::tempdir().expect("a temp dir");
    let dmarcpipe = Dmarcpipe::on(&pool)
        .env("DATABASE_URL", &proxy.url(&pool))
        .env("DMARCPIPE_CONFIG", &config(&settings, "[smtp]\nstore_timeout_seconds = 2\n"));
    let served = Served::start(&dmarcpipe, &[]);
    let xml = ReportBuilder::new("reporter.example", "serve-1", "example.com", NOV_2)
        .record("192.0.2.1", 11, "none", "pass", "pass")
        .xml();
    let mail =
        mail_with_attachment("Report Domain: example.com", "r.xml.gz", "application/gzip", &gzip(xml.as_bytes()));

    proxy.freeze();
    let mut client = RawClient::connect(served.smtp);
    client.start_data(RUA);
    client.send(&smtp_data(&mail));
    client.send(b".\r\n");
    let asked = Instant::now();
    let reply = client.reply();
    assert!(reply.starts_with("451 4.3.0 "), "{reply}");
    assert!(asked.elapsed() < HANG, "answered in time");
    assert!(client.command("QUIT").starts_with("221 "));

    // The sender retries once the database answers again: stored once.
    proxy.thaw();
    let mut client = RawClient::connect(served.smtp);
    client.start_data(RUA);
    client.send(&smtp_data(&mail));
    client.send(b".\r\n");
    let reply = client.reply();
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    assert_eq!(scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await, 11);
    assert!(served.stop().success());
}
