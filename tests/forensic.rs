//! Failure (forensic) reports end to end: import, `forensic list|show`, `keygen`, the rollup
//! columns, interoperability with the real `age` tool (Debian package `age`), and a dump of
//! the whole database that must not contain a byte of the sealed mail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Dmarcpipe, EXCLUDE_EXPECTED, Sealing, code, database_url, json, path, root, scalar};
use sqlx::PgPool;

fn forensic_samples() -> PathBuf {
    root().join("samples/forensic")
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a tool the tests rely on, failing with the package to install when it is missing.
fn tool(program: &str, args: &[&str]) -> std::process::Output {
    let output = Command::new(program).args(args).output().unwrap_or_else(|err| {
        panic!("cannot run `{program}` ({err}): install the Debian package (scripts/packages.sh does)")
    });
    assert!(output.status.success(), "{program} {args:?}: {}", stderr(&output));
    output
}

/// The id of the one failure report whose reported domain and source are these.
async fn report_id(pool: &PgPool, source_ip: &str) -> String {
    let id: i64 = sqlx::query_scalar("SELECT id FROM dmarc_forensic WHERE host(source_ip) = $1")
        .bind(source_ip)
        .fetch_one(pool)
        .await
        .expect("the report");
    id.to_string()
}

#[sqlx::test]
async fn forensic_samples_are_imported_listed_shown_and_counted(pool: PgPool) {
    let sealing = Sealing::new();
    let dmarcpipe = sealing.dmarcpipe(&pool);
    let import =
        dmarcpipe.run(&["import", "--json", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&forensic_samples())]);
    assert_eq!(code(&import), 0, "{}", stderr(&import));
    let summary = json(&import);
    assert_eq!((summary["stored"].as_u64(), summary["forensic"].as_u64()), (Some(10), Some(10)));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_forensic WHERE sample_kept").await, 10);

    let list = json(&dmarcpipe.run(&["forensic", "list", "--format", "json"]));
    let rows = list.as_array().expect("an array");
    assert_eq!(rows.len(), 10);
    for key in ["id", "arrival_date", "source_ip", "reported_domain", "feedback_type", "auth_failure"] {
        assert!(rows.iter().all(|row| row.get(key).is_some()), "every row has `{key}`");
    }
    let types: Vec<&str> = rows.iter().map(|row| row["feedback_type"].as_str().expect("a type")).collect();
    assert_eq!(types.iter().filter(|t| **t == "abuse").count(), 1);
    assert_eq!(types.iter().filter(|t| **t == "auth-failure").count(), 9);

    // CSV carries the same columns, in the same order, with the same values (issue 10).
    let csv_output = dmarcpipe.run(&["forensic", "list", "--format", "csv"]);
    let mut csv = csv::Reader::from_reader(csv_output.stdout.as_slice());
    let header: Vec<String> = csv.headers().expect("a header").iter().map(str::to_owned).collect();
    let keys: Vec<&String> = rows[0].as_object().expect("an object").keys().collect();
    assert_eq!(header.iter().collect::<Vec<_>>(), keys);
    let records: Vec<csv::StringRecord> = csv.records().map(|record| record.expect("a record")).collect();
    assert_eq!(records.len(), rows.len());
    for (record, row) in records.iter().zip(rows) {
        for (column, value) in header.iter().zip(record.iter()) {
            let expected = match &row[column] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Array(items) => {
                    items.iter().map(|item| item.as_str().expect("text").to_owned()).collect::<Vec<_>>().join(" ")
                }
                other => other.to_string(),
            };
            assert_eq!(value, expected, "`{column}` of report {}", row["id"]);
        }
    }

    let org = json(&dmarcpipe.run(&["forensic", "list", "--domain", "example.org", "--format", "json"]));
    let org = org.as_array().expect("an array");
    assert!(!org.is_empty() && org.len() < 10);
    assert!(org.iter().all(|row| row["reported_domain"] == "example.org"));
    let none = json(&dmarcpipe.run(&["forensic", "list", "--since", "2026-12-01", "--format", "json"]));
    assert_eq!(none.as_array().map(Vec::len), Some(0));
    let table = stdout(&dmarcpipe.run(&["forensic", "list"]));
    assert!(table.contains("203.0.113.45") && table.contains("sealed"), "{table}");

    // The Google-style sample: its original's headers, then with --body its body too.
    let id = report_id(&pool, "203.0.113.45").await;
    let identity = path(&sealing.identity);
    let show = dmarcpipe.run(&["forensic", "show", &id, "-i", identity]);
    assert_eq!(code(&show), 0, "{}", stderr(&show));
    let text = stdout(&show);
    assert!(text.starts_with(&format!("# failure report {id}: auth-failure (dmarc) for example.com")), "{text}");
    assert!(text.contains("Subject: Invoice 2026-11") && text.contains("bob@example.net"), "{text}");
    let body = stdout(&dmarcpipe.run(&["forensic", "show", &id, "-i", identity, "--body"]));
    assert!(body.len() > text.len() && body.contains("--- report text ---"), "{body}");
    let raw = dmarcpipe.run(&["forensic", "show", &id, "-i", identity, "--raw"]);
    assert_eq!(raw.stdout, std::fs::read(forensic_samples().join("google-arf.eml")).expect("the sample"));

    // Someone else's identity, and a report that does not exist: clear errors.
    let stranger = Sealing::new();
    let wrong = dmarcpipe.run(&["forensic", "show", &id, "-i", path(&stranger.identity)]);
    assert_eq!(code(&wrong), 2);
    assert!(stderr(&wrong).contains("sealed to other recipients"), "{}", stderr(&wrong));
    let missing = dmarcpipe.run(&["forensic", "show", "999999", "-i", identity]);
    assert_eq!(code(&missing), 2);
    assert!(stderr(&missing).contains("no failure report with id 999999"), "{}", stderr(&missing));

    // Rollups: a forensic column per domain, and failures by type.
    let by_domain = json(&dmarcpipe.run(&["report", "--by", "domain", "--format", "json"]));
    let forensic: i64 =
        by_domain.as_array().expect("rows").iter().map(|row| row["forensic"].as_i64().expect("a forensic count")).sum();
    assert_eq!(forensic, scalar(&pool, "SELECT count(*) FROM forensic_reports, unnest(reported_domains)").await);
    // By day, the days of failure reports only are rows of their own, in the order of days.
    let by_day = json(&dmarcpipe.run(&["report", "--by", "day", "--format", "json"]));
    let days: Vec<&str> =
        by_day.as_array().expect("rows").iter().map(|row| row["day"].as_str().expect("a day")).collect();
    assert!(days.len() > 1 && days.is_sorted(), "{days:?}");
    let forensic: i64 =
        by_day.as_array().expect("rows").iter().map(|row| row["forensic"].as_i64().expect("a forensic count")).sum();
    assert_eq!(forensic, scalar(&pool, "SELECT count(*) FROM forensic_reports").await);
    let by_type = json(&dmarcpipe.run(&["report", "--by", "auth-failure", "--format", "json"]));
    let dmarc = by_type.as_array().expect("rows").iter().find(|row| row["auth_failure"] == "dmarc").expect("dmarc");
    assert_eq!(
        dmarc["reports"].as_i64(),
        Some(scalar(&pool, "SELECT count(*) FROM dmarc_forensic WHERE auth_failure = 'dmarc'").await)
    );
    assert!(dmarc["messages"].as_i64() > dmarc["reports"].as_i64(), "Yahoo's report stands for 3 incidents");
}

/// A failure report whose original has `marker` in its subject, a recipient and its body.
fn marked_report(marker: &str) -> String {
    format!(
        "From: ruf@receiver.example\r\nTo: ruf@example.com\r\nSubject: FW: {marker} quarterly results\r\n\
         Date: Tue, 10 Nov 2026 08:00:00 +0000\r\nMessage-ID: <{marker}-r@receiver.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain\r\n\r\nThis is a DMARC failure report.\r\n\
         --b1\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: auth-failure\r\nUser-Agent: Receiver/1\r\nVersion: 1\r\nAuth-Failure: dmarc\r\n\
         Authentication-Results: receiver.example; dmarc=fail header.from=example.com\r\nIdentity-Alignment: none\r\n\
         Original-Rcpt-To: <{marker}@receiver.example>\r\nSource-IP: 198.51.100.200\r\n\
         Reported-Domain: example.com\r\nArrival-Date: Tue, 10 Nov 2026 07:59:58 +0000\r\n\r\n\
         --b1\r\nContent-Type: message/rfc822\r\n\r\n\
         From: ceo@example.com\r\nTo: {marker}@receiver.example\r\nSubject: {marker} quarterly results\r\n\
         Message-ID: <{marker}-o@example.com>\r\n\r\nThe numbers are in: {marker}.\r\n--b1--\r\n"
    )
}

#[sqlx::test]
async fn no_forensic_content_is_at_rest_in_clear(pool: PgPool) {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("a clock").subsec_nanos();
    let marker = format!("zq{:016x}", u64::from(nanos).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let sealing = Sealing::new();
    let dmarcpipe = sealing.dmarcpipe(&pool);
    let import = dmarcpipe.run_with_stdin(&["import", "--json", "-"], marked_report(&marker).as_bytes());
    assert_eq!(code(&import), 0, "{}", stderr(&import));
    // A rejected input that carries the marker too (a report cut off mid-way).
    let broken = format!("<feedback><report_metadata><org_name>{marker}</org_name>");
    let rejected = dmarcpipe.run_with_stdin(&["import", "--json", "-"], broken.as_bytes());
    assert_eq!(json(&rejected)["rejected"], 1);

    let dump = tool("pg_dump", &["--no-owner", "--dbname", &database_url(&pool)]);
    assert!(dump.stdout.len() > 10_000, "a whole database was dumped");
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(text.contains("forensic_samples") && text.contains("198.51.100.200"), "the dump holds our rows");
    assert!(!text.contains(&marker), "the marker is in the dump in clear");

    let id = report_id(&pool, "198.51.100.200").await;
    let show = dmarcpipe.run(&["forensic", "show", &id, "-i", path(&sealing.identity), "--body"]);
    let text = stdout(&show);
    assert!(text.contains(&format!("Subject: {marker} quarterly results")), "{text}");
    assert!(text.contains(&format!("To: {marker}@receiver.example")), "{text}");
    assert!(text.contains(&format!("The numbers are in: {marker}.")), "{text}");
}

#[sqlx::test]
async fn keys_and_samples_interoperate_with_the_age_tool(pool: PgPool) {
    // A key made by age-keygen opens what dmarcpipe sealed.
    let dir = tempfile::tempdir().expect("a temp dir");
    let age_key = dir.path().join("age-key.txt");
    tool("age-keygen", &["-o", path(&age_key)]);
    let recipient = stdout(&tool("age-keygen", &["-y", path(&age_key)])).trim().to_owned();
    let config = Sealing::config_for(dir.path(), &recipient);
    let dmarcpipe = Dmarcpipe::on(&pool).env("DMARCPIPE_CONFIG", path(&config));
    let sample = forensic_samples().join("microsoft-arf.eml");
    assert_eq!(code(&dmarcpipe.run(&["import", path(&sample)])), 0);
    let id = report_id(&pool, "198.51.100.23").await;
    let show = dmarcpipe.run(&["forensic", "show", &id, "-i", path(&age_key), "--raw"]);
    assert_eq!(code(&show), 0, "{}", stderr(&show));
    assert_eq!(show.stdout, std::fs::read(&sample).expect("the sample"));

    // age decrypts a sample sealed to a key made by `dmarcpipe keygen`.
    let ours = Sealing::new();
    let mode = std::fs::metadata(&ours.identity).expect("the key file").permissions();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
    assert_eq!(
        stdout(&tool("age-keygen", &["-y", path(&ours.identity)])).trim(),
        ours.recipient,
        "age reads our identity file and derives the same recipient"
    );
    let dmarcpipe = ours.dmarcpipe(&pool);
    let sample = forensic_samples().join("yahoo-arf.eml");
    assert_eq!(code(&dmarcpipe.run(&["import", path(&sample)])), 0);
    let sealed: Vec<u8> = sqlx::query_scalar(
        "SELECT s.sealed FROM forensic_samples s JOIN forensic_reports f ON f.id = s.report \
         WHERE host(f.source_ip) = '2001:db8:a0b:12f0::1f'",
    )
    .fetch_one(&pool)
    .await
    .expect("the sample");
    let sealed_file = dir.path().join("sample.age");
    std::fs::write(&sealed_file, sealed).expect("written");
    let opened = tool("age", &["-d", "-i", path(&ours.identity), path(&sealed_file)]);
    assert_eq!(opened.stdout, std::fs::read(&sample).expect("the sample"));

    // keygen never overwrites an identity.
    let again = Dmarcpipe::without_database().run(&["keygen", "-o", path(&ours.identity)]);
    assert_eq!(code(&again), 2);
    assert!(stderr(&again).contains("cannot create the identity file"), "{}", stderr(&again));
}

#[sqlx::test]
async fn without_recipients_failure_reports_keep_only_their_clear_fields(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let import = dmarcpipe.run(&["import", "--json", path(&forensic_samples().join("google-arf.eml"))]);
    assert_eq!(json(&import)["forensic"], 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM forensic_samples").await, 0);
    let id = report_id(&pool, "203.0.113.45").await;
    let sealing = Sealing::new();
    let show = dmarcpipe.run(&["forensic", "show", &id, "-i", path(&sealing.identity)]);
    assert_eq!(code(&show), 2);
    assert!(stderr(&show).contains("has no sample"), "{}", stderr(&show));
    let bad = Path::new("/nonexistent/key.txt");
    let show = dmarcpipe.run(&["forensic", "show", &id, "-i", path(bad)]);
    assert!(stderr(&show).contains("/nonexistent/key.txt"), "{}", stderr(&show));
}
