//! SMTP TLS reports in the store, against a real PostgreSQL (a fresh database per test):
//! every sample of `samples/tlsrpt` stored with its totals, exactly once, in its input's
//! transaction beside aggregate reports, on both routes (read whole, and streamed) and in
//! batches; bad and bomb JSON refused with a reason, JSON that is not a report skipped; the
//! `--tls` rollups equal sums over the rows computed here; nothing in a TLS report can poison
//! the database (NUL, counts that overflow sums, keys too long for an index).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng, gzip, mail_with_attachments, zip};
use dmarcpipe_store::rollup::{Count, RollupFilter};
use dmarcpipe_store::tlsrpt::{self, TlsKey, TlsRollupRow};
use dmarcpipe_store::{InputResult, Outcome, Store};
use serde_json::{Value, json};
use sqlx::PgPool;

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/tlsrpt")
}

fn file(path: &Path) -> Envelope {
    Envelope::new(Origin::File { path: path.to_owned() }, Payload::File(path.to_owned()))
}

fn bytes(name: &str, bytes: Vec<u8>) -> Envelope {
    Envelope::new(Origin::File { path: PathBuf::from(name) }, Payload::Bytes(bytes))
}

async fn ingest(store: &Store, envelope: Envelope) -> InputResult {
    store.ingest(envelope, &Limits::default()).await.expect("the database takes the input")
}

/// The sample inputs of a folder of `samples/tlsrpt` (not their expectations).
fn inputs(dir: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(samples().join(dir))
        .expect("samples/tlsrpt is readable")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.is_file() && !path.to_string_lossy().ends_with(".expected.json"))
        .collect();
    found.sort();
    found
}

/// Per input: (reports, policies, failure details, successful, failed, detailed failures).
type Totals = (i64, i64, i64, i64, i64, i64);

/// The totals of a sample's reviewed golden expectation (`<input>.expected.json`).
fn expected_totals(input: &Path) -> Totals {
    let mut name = input.file_name().expect("a file name").to_os_string();
    name.push(".expected.json");
    let text = std::fs::read_to_string(input.with_file_name(name)).expect("the expectation");
    let expected: Value = serde_json::from_str(&text).expect("JSON");
    let mut totals = (0, 0, 0, 0, 0, 0);
    for found in expected[0]["inspection"]["tls"].as_array().into_iter().flatten() {
        totals.0 += 1;
        for policy in found["content"]["policies"].as_array().expect("policies") {
            let details = policy["failure_details"].as_array().expect("failure details");
            totals.1 += 1;
            totals.2 += details.len() as i64;
            totals.3 += policy["successful_sessions"].as_i64().expect("a count");
            totals.4 += policy["failed_sessions"].as_i64().expect("a count");
            totals.5 += details.iter().map(|d| d["failed_sessions"].as_i64().expect("a count")).sum::<i64>();
        }
    }
    totals
}

async fn stored_totals(pool: &PgPool, input: i64) -> Totals {
    sqlx::query_as(
        "SELECT count(DISTINCT r.id), count(p.*), coalesce(sum(p.failure_detail_count), 0)::bigint, \
             coalesce(sum(p.successful_sessions), 0)::bigint, coalesce(sum(p.failed_sessions), 0)::bigint, \
             (SELECT coalesce(sum(f.failed_sessions), 0)::bigint FROM tls_failures f \
              JOIN tls_reports fr ON fr.id = f.report WHERE fr.input = $1) \
         FROM tls_reports r LEFT JOIN tls_policies p ON p.report = r.id WHERE r.input = $1",
    )
    .bind(input)
    .fetch_one(pool)
    .await
    .expect("totals")
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn every_tls_sample_is_stored_with_its_totals(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let mut cases = inputs("");
    cases.extend(inputs("quirks"));
    assert!(cases.len() >= 8, "{cases:?}");
    for path in cases {
        let expected = expected_totals(&path);
        assert_eq!(expected.0, 1, "{} holds one TLS report", path.display());
        let result = ingest(&store, file(&path)).await;
        assert_eq!((result.outcome, result.reports_stored), (Outcome::Stored, 1), "{}", path.display());
        assert_eq!(stored_totals(&pool, result.input).await, expected, "{}", path.display());
    }
    // The views show what the tables hold, with the warnings and raw values of the parser.
    let (reports, policies, failures): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM dmarc_tls_reports), (SELECT count(*) FROM dmarc_tls_policies), \
         (SELECT count(*) FROM dmarc_tls_failures)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((reports, policies), (8, 8));
    assert_eq!(
        failures,
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM tls_failures").fetch_one(&pool).await.expect("n")
    );
    let (raw, warnings): (Value, Value) = sqlx::query_as(
        "SELECT r.raw, r.warnings FROM dmarc_tls_reports r WHERE organization_name = 'Microsoft.example Corporation'",
    )
    .fetch_one(&pool)
    .await
    .expect("the Microsoft report");
    assert_eq!(raw["date-range.start-datetime"], "2026-11-01T00:00:00");
    assert!(warnings.to_string().contains("datetime_no_offset"), "{warnings}");
    let (result_type, ip, raw): (String, String, Value) = sqlx::query_as(
        "SELECT result_type, host(sending_mta_ip), raw FROM dmarc_tls_failures \
         WHERE organization_name = 'quirky.example' AND failure_no = 2",
    )
    .fetch_one(&pool)
    .await
    .expect("a quirky failure detail");
    assert_eq!((result_type.as_str(), ip.as_str()), ("validation-failure", "192.0.2.41"));
    assert_eq!(raw, json!({ "failed-session-count": "1.0", "sending-mta-ip": "192.0.2.041" }));
    let strings: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(policy_strings) FROM dmarc_tls_policies WHERE policy_type = 'tlsa' AND policy_no = 2",
    )
    .fetch_all(&pool)
    .await
    .expect("the Microsoft TLSA records");
    assert_eq!(strings.len(), 2);
    assert!(strings.iter().all(|s| s.starts_with("3 1 1 ")), "{strings:?}");
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn bad_json_and_bombs_are_rejected_and_other_json_is_not_a_report(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    for (name, stage, reason) in [
        ("bad-json.json", "parse", "not valid JSON (line 29"),
        ("json-bomb-deep.json", "unpack", "JSON nesting exceeds the limit of 16 levels"),
        ("json-bomb-wide.json.gz", "unpack", "100000 members"),
        ("negative-count.json", "parse", "total-failure-session-count` is negative"),
    ] {
        let result = ingest(&store, file(&samples().join("rejected").join(name))).await;
        assert_eq!(result.outcome, Outcome::Rejected, "{name}");
        let (stored_stage, error): (String, String) =
            sqlx::query_as("SELECT stage, error FROM dmarc_inputs WHERE id = $1")
                .bind(result.input)
                .fetch_one(&pool)
                .await
                .expect("the input row");
        assert_eq!(stored_stage, stage, "{name}");
        assert!(error.contains(name) && error.contains(reason), "{name}: {error}");
    }
    for path in inputs("not-reports") {
        let result = ingest(&store, file(&path)).await;
        assert_eq!(result.outcome, Outcome::NotReport, "{}", path.display());
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM tls_reports").fetch_one(&pool).await.expect("n");
    assert_eq!(stored, 0);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_tls_report_arriving_again_is_a_linked_duplicate(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let path = samples().join("dane-tlsa-failures.json");
    let first = ingest(&store, file(&path)).await;
    assert_eq!((first.outcome, first.reports_stored), (Outcome::Stored, 1));

    // The same report gzipped in a mail: other bytes, the same natural key.
    let json = std::fs::read(&path).expect("the sample");
    let mail =
        mail_with_attachments("Report Domain: example.org", &[("r.json.gz", "application/tlsrpt+gzip", &gzip(&json))]);
    let second = ingest(&store, bytes("again.eml", mail)).await;
    assert_eq!(second.outcome, Outcome::Duplicate);
    assert_eq!((second.reports_stored, second.reports_duplicate), (0, 1));
    assert_eq!(second.duplicate_of, Some(first.input));

    // The very same bytes: recognised before parsing.
    let third = ingest(&store, file(&path)).await;
    assert_eq!((third.outcome, third.duplicate_of), (Outcome::Duplicate, Some(first.input)));

    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tls_reports), (SELECT count(*) FROM tls_policies), \
         (SELECT count(*) FROM tls_failures)",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!(counts, (1, 1, 4));
    let outcomes: Vec<(String, i32, i32)> =
        sqlx::query_as("SELECT outcome, reports_stored, reports_duplicate FROM dmarc_inputs ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("inputs");
    assert_eq!(outcomes, [("stored".into(), 1, 0), ("duplicate".into(), 0, 1), ("duplicate".into(), 0, 0)]);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn one_mail_with_an_aggregate_and_a_tls_report_stores_both_in_one_input(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let aggregate = ReportBuilder::new("both.example", "both-1", "example.com", 1_793_577_600)
        .record("192.0.2.1", 3, "none", "pass", "pass")
        .xml();
    let tls = std::fs::read(samples().join("no-policy-found.json")).expect("the sample");
    let mail = mail_with_attachments(
        "Two reports",
        &[("a.xml.gz", "application/gzip", &gzip(aggregate.as_bytes())), ("t.json", "application/tlsrpt+json", &tls)],
    );
    let result = ingest(&store, bytes("both.eml", mail)).await;
    assert_eq!((result.outcome, result.reports_stored, result.records), (Outcome::Stored, 2, 1));
    let inputs: Vec<i64> =
        sqlx::query_scalar("SELECT input FROM aggregate_reports UNION ALL SELECT input FROM tls_reports")
            .fetch_all(&pool)
            .await
            .expect("inputs");
    assert_eq!(inputs, [result.input, result.input]);
}

/// The same TLS report twice in one batch (other bytes, one natural key): written once, and
/// the second input is a duplicate of the first.
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn the_same_tls_report_twice_in_one_batch_is_written_once(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let path = samples().join("dane-tlsa-failures.json");
    let json = std::fs::read(&path).expect("the sample");
    let mail = mail_with_attachments("TLS report", &[("r.json.gz", "application/tlsrpt+gzip", &gzip(&json))]);
    let envelopes = vec![file(&path), bytes("again.eml", mail), file(&samples().join("no-policy-found.json"))];
    let results: Vec<InputResult> = store
        .ingest_many(envelopes, &Limits::default())
        .await
        .into_iter()
        .map(|result| result.expect("the database takes the batch"))
        .collect();
    let summary: Vec<_> =
        results.iter().map(|r| (r.outcome, r.reports_stored, r.reports_duplicate, r.duplicate_of)).collect();
    assert_eq!(
        summary,
        [
            (Outcome::Stored, 1, 0, None),
            (Outcome::Duplicate, 0, 1, Some(results[0].input)),
            (Outcome::Stored, 1, 0, None)
        ]
    );
    assert_eq!(stored_totals(&pool, results[0].input).await, expected_totals(&path));
    assert_eq!(stored_totals(&pool, results[1].input).await, (0, 0, 0, 0, 0, 0));
}

/// An input too large to read whole goes the streaming route; its TLS report is held and
/// written at the end, beside an aggregate report streamed into COPY, and the same reports in
/// other bytes are then duplicates.
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_streamed_input_stores_its_tls_report_beside_a_streamed_aggregate_report(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    // More records than an input read whole may hold, in a mail far smaller than a megabyte.
    let aggregate = ReportBuilder::new("big.example", "big-1", "example.com", 1_793_577_600)
        .random_records(25_000, &mut Rng(7))
        .xml();
    let path = samples().join("dane-tlsa-failures.json");
    let tls = std::fs::read(&path).expect("the sample");
    let attachments = |name: &str| {
        mail_with_attachments(
            name,
            &[
                ("a.xml.gz", "application/gzip", &gzip(aggregate.as_bytes())),
                ("t.json", "application/tlsrpt+json", &tls),
            ],
        )
    };
    let first = ingest(&store, bytes("big.eml", attachments("Two reports"))).await;
    assert_eq!((first.outcome, first.reports_stored, first.records), (Outcome::Stored, 2, 25_000));
    assert_eq!(stored_totals(&pool, first.input).await, expected_totals(&path));

    let second = ingest(&store, bytes("again.eml", attachments("The same two reports"))).await;
    assert_eq!(
        (second.outcome, second.reports_stored, second.reports_duplicate, second.duplicate_of),
        (Outcome::Duplicate, 0, 2, Some(first.input))
    );
}

/// A small archive of TLS reports with more failure details than an input read whole may
/// hold is streamed: its reports are written in batches with the others, the same report again
/// in it is a duplicate, and every row is there.
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn tls_reports_with_many_failures_in_an_archive_are_streamed_in_batches(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let report = |id: &str| {
        let mut report = sample_json("dane-tlsa-failures.json");
        report["report-id"] = json!(id);
        let detail = report["policies"][0]["failure-details"][0].clone();
        report["policies"][0]["failure-details"] = Value::Array(vec![detail; 8_000]);
        report.to_string()
    };
    let (a, b, c) = (report("many-a"), report("many-b"), report("many-c"));
    let archive = zip(&[
        ("a.json", a.as_bytes()),
        ("b.json", b.as_bytes()),
        ("c.json", c.as_bytes()),
        ("again.json", a.as_bytes()),
    ]);
    assert!(archive.len() < 1 << 20, "{} bytes", archive.len());
    let result = ingest(&store, bytes("many.zip", archive)).await;
    assert_eq!(
        (result.outcome, result.reports_stored, result.reports_duplicate),
        (Outcome::Stored, 3, 1),
        "{result:?}"
    );
    let (reports, failures): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM tls_reports WHERE input = $1), \
         (SELECT count(*) FROM tls_failures f JOIN tls_reports r ON r.id = f.report WHERE r.input = $1)",
    )
    .bind(result.input)
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((reports, failures), (3, 24_000));
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_large_tls_report_takes_the_streaming_route_with_the_same_result(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    // Over a megabyte, in a file: read and stored by the streaming route.
    let details: Vec<Value> = (0..6000)
        .map(|n| {
            json!({
                "result-type": if n % 3 == 0 { "certificate-expired" } else { "starttls-not-supported" },
                "sending-mta-ip": format!("2001:db8:{:x}::{:x}", n / 256, n % 256 + 1),
                "receiving-mx-hostname": format!("mx{}.example.com", n % 7),
                "receiving-ip": format!("198.51.100.{}", n % 250 + 1),
                "failed-session-count": n % 5 + 1,
                "failure-reason-code": "a reason long enough to make this report weigh more than a megabyte in the end",
            })
        })
        .collect();
    let failed: i64 = (0..6000).map(|n| n % 5 + 1).sum();
    let report = json!({
        "organization-name": "bulk.example",
        "date-range": { "start-datetime": "2026-11-08T00:00:00Z", "end-datetime": "2026-11-08T23:59:59Z" },
        "contact-info": "tls@bulk.example",
        "report-id": "bulk-20261108",
        "policies": [{
            "policy": { "policy-type": "sts", "policy-string": ["version: STSv1"], "policy-domain": "example.com",
                        "mx-host": ["*.example.com"] },
            "summary": { "total-successful-session-count": 100_000, "total-failure-session-count": failed },
            "failure-details": details,
        }]
    });
    let text = serde_json::to_vec_pretty(&report).expect("JSON");
    assert!(text.len() > 1 << 20, "{} bytes", text.len());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bulk.json");
    std::fs::write(&path, &text).expect("written");
    let streamed = ingest(&store, file(&path)).await;
    assert_eq!((streamed.outcome, streamed.reports_stored), (Outcome::Stored, 1));
    assert_eq!(stored_totals(&pool, streamed.input).await, (1, 1, 6000, 100_000, failed, failed));

    // The same report read whole (bytes in memory) into a fresh table: the same rows.
    let rows = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>(
            "SELECT string_agg(f::text, ';' ORDER BY f.policy_no, f.failure_no)              FROM (SELECT policy_no, failure_no, result_type, sending_mta_ip, receiving_mx_hostname, receiving_ip,                    failed_sessions, failure_reason_code, raw FROM tls_failures) f",
        )
        .fetch_one(&pool)
        .await
        .expect("the failure details")
    };
    let streamed_rows = rows(pool.clone()).await;
    sqlx::query("TRUNCATE inputs, tls_reports CASCADE").execute(&pool).await.expect("truncated");
    let whole = ingest(&store, bytes("bulk.json", text)).await;
    assert_eq!((whole.outcome, whole.reports_stored), (Outcome::Stored, 1));
    assert_eq!(stored_totals(&pool, whole.input).await, (1, 1, 6000, 100_000, failed, failed));
    assert_eq!(rows(pool.clone()).await, streamed_rows);
}

/// One rollup row as computed here from plain rows of the tables.
#[derive(Debug, Default)]
struct Sums {
    reports: BTreeSet<i64>,
    policies: i64,
    successful: i64,
    policy_failed: i64,
    failed: i64,
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    report: i64,
    policy_no: i32,
    organization_name: String,
    day: NaiveDate,
    policy_domain: Option<String>,
    successful_sessions: i64,
    failed_sessions: i64,
}

#[derive(sqlx::FromRow)]
struct FailureRow {
    report: i64,
    policy_no: i32,
    result_type: String,
    receiving_mx_hostname: Option<String>,
    failed_sessions: i64,
}

/// The rollup by `key`, summed in Rust from every policy and failure row of the period.
async fn summed(pool: &PgPool, key: TlsKey, filter: &RollupFilter) -> BTreeMap<String, (i64, i64, i64, i64, i64)> {
    let policies: Vec<PolicyRow> = sqlx::query_as(
        "SELECT p.report, p.policy_no, r.organization_name, (r.date_begin AT TIME ZONE 'UTC')::date AS day, \
             p.policy_domain, p.successful_sessions, p.failed_sessions \
         FROM tls_policies p JOIN tls_reports r ON r.id = p.report",
    )
    .fetch_all(pool)
    .await
    .expect("policies");
    let failures: Vec<FailureRow> = sqlx::query_as(
        "SELECT report, policy_no, result_type, receiving_mx_hostname, failed_sessions FROM tls_failures",
    )
    .fetch_all(pool)
    .await
    .expect("failures");
    let wanted = |p: &PolicyRow| {
        filter.domain.as_ref().is_none_or(|d| p.policy_domain.as_deref() == Some(d.as_str()))
            && filter.since.is_none_or(|since| p.day >= since)
            && filter.until.is_none_or(|until| p.day < until)
    };
    let mut sums: BTreeMap<String, Sums> = BTreeMap::new();
    for policy in policies.iter().filter(|p| wanted(p)) {
        let keys: BTreeMap<String, i64> = match key {
            TlsKey::PolicyDomain => {
                [(policy.policy_domain.clone().unwrap_or_else(|| "unknown".into()), policy.failed_sessions)].into()
            }
            TlsKey::Org => [(policy.organization_name.clone(), policy.failed_sessions)].into(),
            TlsKey::Day => [(policy.day.to_string(), policy.failed_sessions)].into(),
            TlsKey::ResultType | TlsKey::MxHost => {
                let mut keys = BTreeMap::new();
                for failure in failures.iter().filter(|f| (f.report, f.policy_no) == (policy.report, policy.policy_no))
                {
                    let value = match key {
                        TlsKey::ResultType => failure.result_type.clone(),
                        _ => failure.receiving_mx_hostname.clone().unwrap_or_else(|| "unknown".into()),
                    };
                    *keys.entry(value).or_default() += failure.failed_sessions;
                }
                keys
            }
        };
        for (value, failed) in keys {
            let entry = sums.entry(value).or_default();
            entry.reports.insert(policy.report);
            entry.policies += 1;
            entry.successful += policy.successful_sessions;
            entry.policy_failed += policy.failed_sessions;
            entry.failed += failed;
        }
    }
    sums.into_iter()
        .map(|(key, s)| {
            (key, (s.reports.len() as i64, s.policies, s.successful + s.policy_failed, s.successful, s.failed))
        })
        .collect()
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn tls_rollups_equal_sums_over_the_rows(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let mut cases = inputs("");
    cases.extend(inputs("quirks"));
    for path in cases {
        assert_eq!(ingest(&store, file(&path)).await.outcome, Outcome::Stored);
    }
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d);
    let filters = [
        RollupFilter::default(),
        RollupFilter { domain: Some("Example.COM".into()), ..RollupFilter::default() },
        RollupFilter { since: day(2), until: day(5), ..RollupFilter::default() },
    ];
    for filter in &filters {
        for key in [TlsKey::PolicyDomain, TlsKey::Org, TlsKey::Day, TlsKey::ResultType, TlsKey::MxHost] {
            let rows: Vec<TlsRollupRow> = tlsrpt::query(&pool, key, filter).await.expect("the rollup");
            let mut lowered = filter.clone();
            lowered.domain = filter.domain.as_ref().map(|d| d.to_lowercase());
            let expected = summed(&pool, key, &lowered).await;
            let small = |count: Count| i64::try_from(count.0).expect("a sum of the samples");
            let actual: BTreeMap<String, (i64, i64, i64, i64, i64)> = rows
                .iter()
                .map(|r| {
                    (r.key.clone(), (r.reports, r.policies, small(r.sessions), small(r.successful), small(r.failed)))
                })
                .collect();
            assert_eq!(actual, expected, "{key:?} with {filter:?}");
            assert!(!rows.is_empty(), "{key:?} with {filter:?}");
            for row in &rows {
                let share =
                    (row.sessions.0 > 0).then(|| (row.failed.0 as f64 / row.sessions.0 as f64 * 1e4).round() / 1e4);
                assert_eq!(row.failure_share, share, "{row:?}");
            }
        }
    }
    // Ordered: most failed sessions first, days in calendar order.
    let by_type = tlsrpt::query(&pool, TlsKey::ResultType, &RollupFilter::default()).await.expect("the rollup");
    assert_eq!(by_type[0].key, "starttls-not-supported");
    assert!(by_type.windows(2).all(|w| w[0].failed >= w[1].failed));
    let by_day = tlsrpt::query(&pool, TlsKey::Day, &RollupFilter::default()).await.expect("the rollup");
    assert!(by_day.windows(2).all(|w| w[0].key < w[1].key));
}

/// A TLS report of the samples as JSON, to edit.
fn sample_json(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(samples().join(name)).expect("the sample")).expect("JSON")
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn nothing_in_a_tls_report_poisons_the_database(pool: PgPool) {
    let (store, _) = common::sealing_store(&pool);
    // NUL in text and in a member name: stored, replaced, and said so.
    let mut report = sample_json("dane-tlsa-failures.json");
    report["organization-name"] = json!("Sender\u{0}Example");
    report["policies"][0]["failure-details"][0]["vendor\u{0}note"] = json!("x\u{0}y");
    let result = ingest(&store, bytes("nul.json", report.to_string().into_bytes())).await;
    assert_eq!((result.outcome, result.reports_stored), (Outcome::Stored, 1), "{result:?}");
    let (name, raw, warnings): (String, Value, Value) = sqlx::query_as(
        "SELECT r.organization_name, f.raw, r.warnings FROM dmarc_tls_reports r \
         JOIN dmarc_tls_failures f ON f.report = r.id AND f.failure_no = 1",
    )
    .fetch_one(&pool)
    .await
    .expect("the report");
    assert_eq!(name, "Sender\u{fffd}Example");
    assert_eq!(raw["vendor\u{fffd}note"], "\"x\u{fffd}y\"");
    assert!(warnings.to_string().contains("nul_replaced"), "{warnings}");

    // Counts that no sum could hold, and a key too long for an index: rejected, bytes kept.
    let mut huge = sample_json("no-policy-found.json");
    huge["policies"][0]["summary"]["total-successful-session-count"] = json!(i64::MAX);
    let mut long = sample_json("no-policy-found.json");
    long["report-id"] = json!("r".repeat(3000));
    for (name, report, reason) in
        [("huge.json", huge, "add up to more than 1099511627776"), ("long.json", long, "`report-id` of 3000 bytes")]
    {
        let result = ingest(&store, bytes(name, report.to_string().into_bytes())).await;
        assert_eq!(result.outcome, Outcome::Rejected, "{name}");
        let (error, kept): (String, bool) =
            sqlx::query_as("SELECT error, payload_kept FROM dmarc_inputs WHERE id = $1")
                .bind(result.input)
                .fetch_one(&pool)
                .await
                .expect("the input row");
        assert!(error.contains(reason) && kept, "{name}: {error}, kept {kept}");
    }

    // Sums beyond 64 bits (of reports at the cap, more than any test can import) stay exact.
    let half = 1i64 << 62;
    for id in ["big-1", "big-2"] {
        sqlx::query(
            "WITH r AS (INSERT INTO tls_reports (input, organization_name, report_id, date_begin, date_end, \
                 policy_count, failure_detail_count, successful_sessions, failed_sessions, received_at) \
                 VALUES (0, 'big.example', $1, '2026-11-09', '2026-11-09 23:59:59', 1, 0, $2, 0, now()) RETURNING id) \
             INSERT INTO tls_policies (report, policy_no, policy_domain, successful_sessions, failed_sessions, \
                 failure_detail_count) SELECT id, 1, 'example.net', $2, 0, 0 FROM r",
        )
        .bind(id)
        .bind(half)
        .execute(&pool)
        .await
        .expect("inserted");
    }
    let filter = RollupFilter { domain: Some("example.net".into()), ..RollupFilter::default() };
    let rows = tlsrpt::query(&pool, TlsKey::Org, &filter).await.expect("the rollup answers");
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].sessions, rows[0].failed, rows[0].failure_share), (Count(1 << 63), Count(0), Some(0.0)));
    let share: Option<f64> =
        sqlx::query_scalar("SELECT sum(failure_share) FROM dmarc_tls_policies WHERE organization_name = 'big.example'")
            .fetch_one(&pool)
            .await
            .expect("the view answers");
    assert_eq!(share, Some(0.0));
}
