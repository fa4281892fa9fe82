//! The TLS reports nobody here wrote: every TLS-RPT input of `../shared/corpus` and
//! `../shared/standards/vectors` is stored with the right totals, and the RFC's own invalid
//! example and its fragments get their outcome. Skipped, saying so, when `../shared` is absent.
//!
//! The expected totals come from outside our parser: the JSON read with `serde_json::Value`
//! and summed here (for the mails of stalwartlabs/mail-auth, the JSON that project published
//! beside each of them), and, for the few gzipped reports, numbers read off the files decoded
//! with Python's email and gzip modules (noted in the table).

mod common;

use std::path::{Path, PathBuf};

use dmarcpipe_store::{Outcome, Store};
use serde_json::Value;
use sqlx::PgPool;

/// (policies, failure details, successful sessions, failed sessions, failed sessions of the
/// failure details) of one report.
type Totals = (i64, i64, i64, i64, i64);

/// What a stored report must hold: organization, report id, totals.
type Stored = (String, String, Totals);

/// A count as the JSON has it: a number or a string of digits; absent is 0.
fn number(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().expect("an integer"),
        Value::String(s) => s.trim().parse().expect("digits"),
        _ => 0,
    }
}

/// The totals of a report, summed from its JSON.
fn totals(report: &Value) -> Totals {
    let policies: Vec<&Value> = match &report["policies"] {
        Value::Array(list) => list.iter().collect(),
        Value::Object(_) => vec![&report["policies"]],
        _ => Vec::new(),
    };
    let mut totals = (policies.len() as i64, 0, 0, 0, 0);
    for policy in policies {
        let details = policy["failure-details"].as_array().map(Vec::as_slice).unwrap_or_default();
        totals.1 += details.len() as i64;
        totals.2 += number(&policy["summary"]["total-successful-session-count"]);
        totals.3 += number(&policy["summary"]["total-failure-session-count"]);
        totals.4 += details.iter().map(|d| number(&d["failed-session-count"])).sum::<i64>();
    }
    totals
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

/// What each file must give: the outcome, and for stored ones the organization, the report
/// id and the totals.
fn expectations(shared: &Path) -> Vec<(PathBuf, Outcome, Option<Stored>)> {
    let stored = |value: &Value| {
        let text = |key: &str| value[key].as_str().expect("a string").to_owned();
        Some((text("organization-name"), text("report-id"), totals(value)))
    };
    let mut cases = Vec::new();
    let corpus = shared.join("corpus");
    for dir in ["cry-inc/tlsrpt", "mail-auth/tlsrpt"] {
        for entry in std::fs::read_dir(corpus.join(dir)).expect("readable") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                // mail-auth's JSON beside a mail is that mail's report: both are inputs.
                let expected = stored(&json(&path));
                let mail = path.with_extension("eml");
                if mail.exists() {
                    cases.push((mail, Outcome::Stored, expected.clone()));
                }
                cases.push((path, Outcome::Stored, expected));
            }
        }
    }
    // Decoded with Python's email and gzip modules and counted by hand.
    cases.push((
        corpus.join("mox/tlsrpt/example.eml"),
        Outcome::Stored,
        Some(("Google Inc.".into(), "2022-09-15T00:00:00Z_test.xmox.nl".into(), (1, 0, 3, 0, 0))),
    ));
    cases.push((
        corpus.join("mox/tlsrpt/microsoft.eml"),
        Outcome::Stored,
        Some(("Microsoft Corporation".into(), "133198585438131172+test.xmox.nl".into(), (1, 0, 2, 0, 0))),
    ));
    let vectors = shared.join("standards/vectors");
    let normalized = vectors.join("rfc8460-appendix-b-example-report.normalized.json");
    cases.push((normalized.clone(), Outcome::Stored, stored(&json(&normalized))));
    // As printed in the RFC, a string is broken across a line: not JSON.
    cases.push((vectors.join("rfc8460-appendix-b-example-report.verbatim.json"), Outcome::Rejected, None));
    // Fragments: arrays of policy strings, and a mail whose body is a placeholder.
    for name in [
        "rfc8460-4.5-policy-string-sts.json",
        "rfc8460-4.5-policy-string-tlsa.json",
        "rfc8460-5.3-example-report-email.eml",
    ] {
        cases.push((vectors.join(name), Outcome::NotReport, None));
    }
    for entry in std::fs::read_dir(vectors.join("synthetic")).expect("readable") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if name == "tls-report.json.gz" {
            // Decoded with Python's gzip module.
            let key = ("Sender Example".into(), "2023-11-15T00:00:00Z_example.com".into());
            cases.push((path, Outcome::Stored, Some((key.0, key.1, (1, 0, 10, 0, 0)))));
        } else if name.starts_with("tls-") {
            let expected = stored(&json(&path));
            cases.push((path, Outcome::Stored, expected));
        }
    }
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn every_shared_tls_report_is_stored_with_its_totals(pool: PgPool) {
    let Some(shared) = common::shared("every_shared_tls_report_is_stored_with_its_totals") else {
        return;
    };
    let store = Store::from_pool(pool.clone());
    let cases = expectations(&shared);
    assert_eq!(cases.len(), 26, "{cases:#?}");
    let mut failures = Vec::new();
    for (path, outcome, expected) in cases {
        let Some((name, _)) = common::ingest_case(&store, &shared, &path, outcome, &mut failures).await else {
            continue;
        };
        let Some((organization, report_id, totals)) = expected else { continue };
        let stored: Option<(String, String, i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT r.organization_name, r.report_id, r.policy_count::bigint, r.failure_detail_count::bigint, \
                 r.successful_sessions, r.failed_sessions, \
                 (SELECT coalesce(sum(failed_sessions), 0)::bigint FROM dmarc_tls_failures f WHERE f.report = r.id) \
             FROM dmarc_tls_reports r",
        )
        .fetch_optional(&pool)
        .await
        .expect("the report");
        let expected = (organization, report_id, totals.0, totals.1, totals.2, totals.3, totals.4);
        match stored {
            Some(stored) if stored == expected => {}
            other => failures.push(format!("{name}:\n  stored   {other:?}\n  expected {expected:?}")),
        }
        let policy_rows: i64 =
            sqlx::query_scalar("SELECT count(*) FROM dmarc_tls_policies").fetch_one(&pool).await.expect("counted");
        if policy_rows != totals.0 {
            failures.push(format!("{name}: {policy_rows} policy rows, expected {}", totals.0));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
