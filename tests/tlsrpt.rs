//! End to end: `dmarcpipe import` of the TLS report samples into a real PostgreSQL, then
//! `dmarcpipe report --tls` in every format, checked against the tables; a TLS report mail
//! delivered to `dmarcpipe serve` by swaks; `parse` shows TLS reports without a database; keys
//! that do not fit are refused.

mod common;

use std::collections::BTreeMap;

use common::smtp::{Served, Swaks};
use common::{Dmarcpipe, code, json, path, root, scalar};
use serde_json::Value;
use sqlx::PgPool;

fn tls_samples() -> std::path::PathBuf {
    root().join("samples/tlsrpt")
}

const EXCLUDE: [&str; 2] = ["--exclude", "*.expected.json"];

#[sqlx::test]
async fn tls_reports_are_imported_and_rolled_up(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let output = dmarcpipe.run(&["import", "--json", EXCLUDE[0], EXCLUDE[1], path(&tls_samples())]);
    // Four samples are broken on purpose: exit 1, and every input is accounted for.
    assert_eq!(code(&output), 1, "{}", String::from_utf8_lossy(&output.stderr));
    let summary = json(&output);
    let count = |key: &str| summary[key].as_u64().expect("a count");
    assert_eq!((count("stored"), count("reports"), count("not_report"), count("rejected")), (8, 8, 3, 4));
    assert_eq!(count("reports") as i64, scalar(&pool, "SELECT count(*) FROM dmarc_tls_reports").await);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("json-bomb-deep.json") && stderr.contains("JSON nesting"), "{stderr}");

    // By policy domain, as JSON: the sums of the policies.
    let rows = json(&dmarcpipe.run(&["report", "--tls", "--by", "policy-domain", "--format", "json"]));
    let rows = rows.as_array().expect("rows");
    let sessions: i64 = rows.iter().map(|row| row["sessions"].as_i64().expect("sessions")).sum();
    let failed: i64 = rows.iter().map(|row| row["failed"].as_i64().expect("failed")).sum();
    assert_eq!(
        sessions,
        scalar(&pool, "SELECT sum(successful_sessions + failed_sessions)::bigint FROM dmarc_tls_policies").await
    );
    assert_eq!(failed, scalar(&pool, "SELECT sum(failed_sessions)::bigint FROM dmarc_tls_policies").await);
    let example_org = rows.iter().find(|row| row["policy_domain"] == "example.org").expect("example.org");
    assert_eq!((&example_org["failed"], &example_org["failure_share"]), (&Value::from(260), &Value::from(0.0434)));

    // By result type, as CSV: the failure details.
    let output = dmarcpipe.run(&["report", "--tls", "--by", "result-type", "--format", "csv"]);
    assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let csv = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("result_type,reports,policies,sessions,successful,failed,failure_share"));
    let by_type: BTreeMap<String, i64> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[0].to_owned(), cells[5].parse().expect("failed sessions"))
        })
        .collect();
    let expected: Vec<(String, i64)> =
        sqlx::query_as("SELECT result_type, sum(failed_sessions)::bigint FROM dmarc_tls_failures GROUP BY 1")
            .fetch_all(&pool)
            .await
            .expect("sums");
    assert_eq!(by_type, expected.into_iter().collect::<BTreeMap<_, _>>());
    assert_eq!(by_type["sts-policy-expired"], 4, "unregistered result types are kept");

    // Filters: one domain, one period; as a table for people.
    let output = dmarcpipe.run(&["report", "--tls", "--by", "mx-host", "--domain", "example.org"]);
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(table.lines().next().is_some_and(|header| header.contains("mx host") && header.contains("failed %")));
    assert!(table.contains("mx.example.org") && table.contains("10.92%"), "{table}");
    assert!(!table.contains("mx2.example.com"), "{table}");
    let days = json(&dmarcpipe.run(&[
        "report",
        "--tls",
        "--by",
        "day",
        "--since",
        "2026-11-02",
        "--until",
        "2026-11-04",
        "--format",
        "json",
    ]));
    let days: Vec<&str> = days.as_array().expect("rows").iter().map(|r| r["day"].as_str().expect("a day")).collect();
    assert_eq!(days, ["2026-11-02", "2026-11-03"]);

    // The same samples again: byte-identical duplicates, nothing stored twice.
    let again = json(&dmarcpipe.run(&["import", "--json", EXCLUDE[0], EXCLUDE[1], path(&tls_samples())]));
    assert_eq!((again["reports"].as_u64(), again["duplicate"].as_u64()), (Some(0), Some(11)));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_tls_reports").await, 8);
}

#[sqlx::test]
async fn a_tls_report_mail_is_stored_by_serve_once(pool: PgPool) {
    let served = Served::start(&Dmarcpipe::on(&pool), &[]);
    let mail = tls_samples().join("microsoft-mail.eml");
    let transcript = Swaks::to(served.smtp).data(&mail).delivered();
    assert!(transcript.contains("<-  250 2.0.0 Stored as input 1: 1 report"), "{transcript}");
    let again = Swaks::to(served.smtp).data(&mail).delivered();
    assert!(again.contains("<-  250 2.0.0 A duplicate of input 1; recorded as input 2"), "{again}");
    assert!(served.stop().success());
    let (channel, input, sessions): (String, i64, i64) = sqlx::query_as(
        "SELECT i.channel, r.input, r.successful_sessions + r.failed_sessions \
         FROM dmarc_tls_reports r JOIN dmarc_inputs i ON i.id = r.input",
    )
    .fetch_one(&pool)
    .await
    .expect("one report");
    assert_eq!((channel.as_str(), input, sessions), ("smtp", 1, 462));
}

#[sqlx::test]
async fn report_keys_must_fit_the_kind_of_report(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let output = dmarcpipe.run(&["report", "--tls", "--by", "source"]);
    assert_eq!(code(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("--tls groups by policy-domain"));
    let output = dmarcpipe.run(&["report", "--by", "result-type"]);
    assert_eq!(code(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("add --tls"));
    // An empty database has no rows, and says so.
    let output = dmarcpipe.run(&["report", "--tls", "--by", "org"]);
    assert_eq!((code(&output), String::from_utf8_lossy(&output.stdout).trim()), (0, "(no rows)"));
}

#[test]
fn parse_shows_tls_reports() {
    let output = Dmarcpipe::without_database().run(&["parse", path(&tls_samples().join("google-mail.eml"))]);
    assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let parsed = json(&output);
    assert_eq!(parsed[0]["inspection"]["verdict"], "reports");
    let report = &parsed[0]["inspection"]["tls"][0]["content"];
    assert_eq!(report["organization_name"], "google.example");
    assert_eq!(report["policies"][0]["mx_hosts"], serde_json::json!(["mx1.example.com", "mx2.example.com"]));
}
