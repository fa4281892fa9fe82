//! The store against a real PostgreSQL: a fresh database per test (`#[sqlx::test]`, which
//! needs `DATABASE_URL`; `make test` provides one).

mod common;

use std::path::{Path, PathBuf};

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng, gzip, mail_with_attachment, mail_with_attachments, zip};
use dmarcpipe_store::rollup::{self, RollupFilter, RollupKey};
use dmarcpipe_store::{InputResult, Outcome, Store, StoreError};
use sqlx::PgPool;

const NOV_2: u64 = 1_793_577_600; // 2026-11-02T00:00:00Z
const OCT_2: u64 = 1_790_899_200; // 2026-10-02T00:00:00Z

fn sample(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/aggregate").join(path)
}

fn file(path: &str) -> Envelope {
    let path = sample(path);
    Envelope::new(Origin::File { path: path.clone() }, Payload::File(path))
}

fn bytes(name: &str, bytes: Vec<u8>) -> Envelope {
    Envelope::new(Origin::File { path: PathBuf::from(name) }, Payload::Bytes(bytes))
}

async fn ingest(store: &Store, envelope: Envelope) -> InputResult {
    store.ingest(envelope, &Limits::default()).await.expect("the database takes the input")
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(pool).await.expect("query runs").unwrap_or(0)
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_report_is_stored_with_its_records_and_provenance(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let result = ingest(&store, file("outlook-xsi.xml")).await;
    assert_eq!(result.outcome, Outcome::Stored);
    assert_eq!((result.reports_stored, result.records), (1, 6));

    let (channel, origin, sha256, outcome): (String, String, String, String) =
        sqlx::query_as("SELECT channel, origin, sha256, outcome FROM dmarc_inputs WHERE id = $1")
            .bind(result.input)
            .fetch_one(&pool)
            .await
            .expect("the input row");
    assert_eq!((channel.as_str(), outcome.as_str()), ("file", "stored"));
    assert!(origin.ends_with("samples/aggregate/outlook-xsi.xml"), "{origin}");
    assert_eq!(sha256.len(), 64);

    let (org, domain, p, schema, records, messages): (String, String, String, String, i64, i64) = sqlx::query_as(
        "SELECT org_name, policy_domain, policy_p, schema, record_count, message_count FROM dmarc_reports WHERE input = $1",
    )
    .bind(result.input)
    .fetch_one(&pool)
    .await
    .expect("the report row");
    assert_eq!(
        (org.as_str(), domain.as_str(), p.as_str(), schema.as_str()),
        ("Outlook.example", "example.net", "quarantine", "rfc7489")
    );
    assert_eq!(records, 6);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, 6);
    assert_eq!(scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await, messages);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records WHERE family(source_ip) = 6").await, 1);
    // Every record has one DKIM and one SPF result here; the views give one row per result.
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_dkim_results").await, 6);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_spf_results").await, 6);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM dmarc_records WHERE dmarc_result = 'pass' AND dkim_aligned = 'fail' AND spf_aligned = 'fail'").await,
        0
    );
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_report_arriving_twice_is_a_linked_duplicate(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let first = ingest(&store, file("yahoo.xml.gz")).await;
    // The same report in a mail: other bytes, same natural key.
    let second = ingest(&store, file("duplicates/yahoo-again.eml")).await;
    assert_eq!(first.outcome, Outcome::Stored);
    assert_eq!(second.outcome, Outcome::Duplicate);
    assert_eq!((second.reports_stored, second.reports_duplicate, second.records), (0, 1, 0));
    assert_eq!(second.duplicate_of, Some(first.input));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, first.records as i64);

    // The very same bytes again: recognised by SHA-256, linked to the first arrival.
    let third = ingest(&store, file("yahoo.xml.gz")).await;
    assert_eq!((third.outcome, third.duplicate_of), (Outcome::Duplicate, Some(first.input)));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'duplicate'").await, 2);
}

/// `import -` stores its one message with `ingest_alone`, on its own task: the same outcomes as
/// `ingest` (stored, duplicate by content and by natural key, rejected with its reason).
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn an_input_stored_alone_gets_the_outcomes_of_one_stored_with_others(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let alone = async |envelope| store.ingest_alone(envelope, &Limits::default()).await.expect("taken");
    let first = alone(file("yahoo.xml.gz")).await;
    assert_eq!((first.outcome, first.reports_stored), (Outcome::Stored, 1));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, first.records as i64);
    let again = alone(file("duplicates/yahoo-again.eml")).await;
    assert_eq!((again.outcome, again.duplicate_of), (Outcome::Duplicate, Some(first.input)));
    let same_bytes = alone(file("yahoo.xml.gz")).await;
    assert_eq!((same_bytes.outcome, same_bytes.duplicate_of), (Outcome::Duplicate, Some(first.input)));
    let broken = alone(file("rejected/xxe.xml")).await;
    assert_eq!(broken.outcome, Outcome::Rejected);
    assert!(broken.error.as_deref().is_some_and(|reason| reason.contains("DTD")), "{:?}", broken.error);
    // Mixed with inputs stored by the writers of `ingest`, each counted once.
    let mut rng = Rng(11);
    let xml = ReportBuilder::new("alone.example", "alone-1", "example.com", NOV_2).random_records(2, &mut rng).xml();
    assert_eq!(ingest(&store, bytes("alone-1.xml", xml.into_bytes())).await.outcome, Outcome::Stored);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 2);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 5);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn inputs_that_are_not_reports_or_broken_get_their_outcome_and_reason(pool: PgPool) {
    let (store, opener) = common::sealing_store(&pool);
    let reply = ingest(&store, file("not-reports/human-reply.eml")).await;
    assert_eq!(reply.outcome, Outcome::NotReport);
    let warnings: serde_json::Value = sqlx::query_scalar("SELECT warnings FROM dmarc_inputs WHERE id = $1")
        .bind(reply.input)
        .fetch_one(&pool)
        .await
        .expect("the row");
    assert!(warnings.to_string().contains("no report found"), "{warnings}");

    let xxe = ingest(&store, file("rejected/xxe.xml")).await;
    assert_eq!(xxe.outcome, Outcome::Rejected);
    let (stage, error, kept): (String, String, bool) =
        sqlx::query_as("SELECT stage, error, payload_kept FROM dmarc_inputs WHERE id = $1")
            .bind(xxe.input)
            .fetch_one(&pool)
            .await
            .expect("the row");
    assert_eq!(stage, "parse");
    assert!(error.contains("xxe.xml") && error.contains("DTD"), "{error}");
    assert!(kept, "rejected inputs keep their bytes");
    let (payload, sealed): (Vec<u8>, bool) =
        sqlx::query_as("SELECT payload, sealed FROM input_payloads WHERE input = $1")
            .bind(xxe.input)
            .fetch_one(&pool)
            .await
            .expect("the payload");
    assert!(sealed && payload.starts_with(b"age-encryption.org/v1\n"), "kept bytes are sealed");
    let opened = opener.open(&payload).expect("the identity opens them");
    assert_eq!(opened, std::fs::read(sample("rejected/xxe.xml")).expect("the sample"));

    let bomb = ingest(&store, file("rejected/gzip-bomb.xml.gz")).await;
    assert_eq!(bomb.outcome, Outcome::Rejected);
    assert!(bomb.error.as_deref().is_some_and(|e| e.contains("compression ratio")), "{:?}", bomb.error);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 0);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn reprocess_stores_what_an_upgrade_makes_readable(pool: PgPool) {
    let (store, opener) = common::sealing_store(&pool);
    // A limit that rejects every report stands in for a parser that could not read it.
    let strict = Limits { max_xml_depth: 3, ..Limits::default() };
    let rejected = store.ingest(file("mailru.xml"), &strict).await.expect("stored as rejected");
    assert_eq!(rejected.outcome, Outcome::Rejected);
    assert_eq!(store.kept_rejected_inputs(&[]).await.expect("listed"), vec![rejected.input]);

    // The kept bytes are sealed: no identity, no reprocessing (and the input stays as it was).
    let refused = store.reprocess(rejected.input, &strict, None).await.expect_err("needs the identity");
    assert!(refused.to_string().contains("-i FILE"), "{refused}");

    // Still broken for this "version": stays rejected, bytes stay kept.
    let again = store.reprocess(rejected.input, &strict, Some(&opener)).await.expect("reprocessed").expect("claimed");
    assert_eq!(again.outcome, Outcome::Rejected);

    let fixed = store
        .reprocess(rejected.input, &Limits::default(), Some(&opener))
        .await
        .expect("reprocessed")
        .expect("claimed");
    assert_eq!((fixed.input, fixed.outcome, fixed.reports_stored), (rejected.input, Outcome::Stored, 1));
    let (outcome, attempts, kept): (String, i32, bool) =
        sqlx::query_as("SELECT outcome, attempts, payload_kept FROM dmarc_inputs WHERE id = $1")
            .bind(rejected.input)
            .fetch_one(&pool)
            .await
            .expect("the row");
    assert_eq!((outcome.as_str(), attempts, kept), ("stored", 3, false));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    // Nothing left to reprocess, and a second run finds nothing to claim.
    assert!(store.kept_rejected_inputs(&[]).await.expect("listed").is_empty());
    assert!(store.reprocess(rejected.input, &Limits::default(), Some(&opener)).await.expect("runs").is_none());
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn the_same_rejected_bytes_again_are_a_duplicate_of_the_first(pool: PgPool) {
    let (store, opener) = common::sealing_store(&pool);
    let strict = Limits { max_xml_depth: 3, ..Limits::default() };
    let first = store.ingest(file("mailru.xml"), &strict).await.expect("recorded");
    assert_eq!(first.outcome, Outcome::Rejected);
    // Its bytes are kept for `reprocess`: the same bytes again are a duplicate of it, not a
    // second rejected input with a second copy of the bytes.
    let second = store.ingest(file("mailru.xml"), &strict).await.expect("recorded");
    assert_eq!((second.outcome, second.duplicate_of), (Outcome::Duplicate, Some(first.input)));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'rejected'").await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM input_payloads").await, 1);
    assert_eq!(store.kept_rejected_inputs(&[]).await.expect("listed"), vec![first.input]);

    // Once reprocess reads the first, a later arrival is a duplicate of it as usual, and the
    // duplicate recorded meanwhile still points at it.
    let fixed =
        store.reprocess(first.input, &Limits::default(), Some(&opener)).await.expect("reprocessed").expect("claimed");
    assert_eq!(fixed.outcome, Outcome::Stored);
    let third = ingest(&store, file("mailru.xml")).await;
    assert_eq!((third.outcome, third.duplicate_of), (Outcome::Duplicate, Some(first.input)));
    let duplicate_of: Option<i64> = sqlx::query_scalar("SELECT duplicate_of FROM dmarc_inputs WHERE id = $1")
        .bind(second.input)
        .fetch_one(&pool)
        .await
        .expect("the row");
    assert_eq!(duplicate_of, Some(first.input));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn rejected_bytes_that_were_not_kept_are_read_again_when_they_come_again(pool: PgPool) {
    // No age recipient: a rejected input's bytes are not kept, and importing them again is the
    // only way to have them read again.
    let store = Store::from_pool(pool.clone());
    let strict = Limits { max_xml_depth: 3, ..Limits::default() };
    let first = store.ingest(file("mailru.xml"), &strict).await.expect("recorded");
    assert_eq!(first.outcome, Outcome::Rejected);
    let second = ingest(&store, file("mailru.xml")).await;
    assert_eq!((second.outcome, second.reports_stored), (Outcome::Stored, 1));
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_broken_part_rejects_its_input_but_keeps_the_good_reports(pool: PgPool) {
    let (store, opener) = common::sealing_store(&pool);
    let good = ReportBuilder::new("Reporter Example", "good-1", "example.com", NOV_2).record(
        "192.0.2.1",
        5,
        "none",
        "pass",
        "pass",
    );
    let archive = zip(&[("good.xml", good.xml().as_bytes()), ("broken.xml", b"<feedback><report_metadata>")]);
    let result = ingest(&store, bytes("mixed.zip", archive.clone())).await;
    assert_eq!(result.outcome, Outcome::Rejected);
    assert_eq!((result.reports_stored, result.records), (1, 1));
    assert!(result.error.as_deref().is_some_and(|e| e.contains("broken.xml")), "{:?}", result.error);

    // Reprocessing cannot fix the broken entry and must not store the good report twice.
    let again = store.reprocess(result.input, &Limits::default(), Some(&opener)).await.expect("runs").expect("claimed");
    assert_eq!(again.outcome, Outcome::Rejected);
    assert_eq!(again.reports_stored, 1, "the good report counts as this input's own");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, 1);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn big_reports_are_loaded_with_copy_and_rolled_up_exactly(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let mut rng = Rng(42);
    // 3,000 records gzipped: parsed in memory, loaded with COPY.
    let medium = ReportBuilder::new("Medium Example", "m-1", "example.net", NOV_2).random_records(3_000, &mut rng);
    let result = ingest(&store, bytes("medium.xml.gz", gzip(medium.xml().as_bytes()))).await;
    assert_eq!((result.outcome, result.records, result.messages), (Outcome::Stored, 3_000, medium.messages() as i64));
    // 12,000 records of plain XML (over a megabyte): streamed while parsed.
    let large = ReportBuilder::new("Large Example", "l-1", "example.org", OCT_2).random_records(12_000, &mut rng);
    let xml = large.xml().into_bytes();
    assert!(xml.len() > 2 << 20);
    let result = ingest(&store, bytes("large.xml", xml)).await;
    assert_eq!((result.outcome, result.records, result.messages), (Outcome::Stored, 12_000, large.messages() as i64));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, 15_000);
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM pg_class WHERE relname IN ('aggregate_records_2026_10', 'aggregate_records_2026_11')"
        )
        .await,
        2,
        "a partition per month"
    );
    assert_rollups_match_records(&pool).await;
}

/// Every rollup key against the same sums computed from the records.
async fn assert_rollups_match_records(pool: &PgPool) {
    let filter = RollupFilter::default();
    for (key, expression) in [
        (RollupKey::Result, "coalesce(dmarc_result, 'unknown')"),
        (RollupKey::Source, "host(source_ip)"),
        (RollupKey::Org, "org_name"),
        (RollupKey::Domain, "policy_domain"),
        (RollupKey::Day, "to_char((date_begin AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')"),
    ] {
        let mut rollup: Vec<(Option<String>, i64, i64, i64, i64, i64)> = rollup::query(pool, key, &filter)
            .await
            .expect("the rollup")
            .into_iter()
            .map(|row| {
                let count = |count: rollup::Count| i64::try_from(count.0).expect("fits");
                (
                    row.key,
                    count(row.messages),
                    count(row.dmarc_pass),
                    count(row.disposition_reject),
                    count(row.dkim_aligned),
                    count(row.records),
                )
            })
            .collect();
        let sql = format!(
            "SELECT {expression} AS key, sum(message_count)::bigint, \
                 coalesce(sum(message_count) FILTER (WHERE dmarc_result = 'pass'), 0)::bigint, \
                 coalesce(sum(message_count) FILTER (WHERE disposition = 'reject'), 0)::bigint, \
                 coalesce(sum(message_count) FILTER (WHERE dkim_aligned = 'pass'), 0)::bigint, count(*) \
             FROM dmarc_records GROUP BY 1"
        );
        let mut direct: Vec<(Option<String>, i64, i64, i64, i64, i64)> =
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await.expect("the records");
        rollup.sort();
        direct.sort();
        assert_eq!(rollup, direct, "rollup by {}", key.name());
    }
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_failure_inside_a_streamed_report_undoes_that_report_only(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let mut rng = Rng(9);
    let small =
        ReportBuilder::new("Small Example", "s-1", "example.com", NOV_2).record("192.0.2.7", 2, "none", "pass", "pass");
    let big = ReportBuilder::new("Big Example", "b-1", "example.com", NOV_2).random_records(6_000, &mut rng).xml();
    // Cut the big report in the middle of its records: thousands are streamed before the end
    // of the document turns out to be missing. Uncompressed, the mail is large enough to
    // take the streaming route.
    let cut = &big.as_bytes()[..big.len() * 3 / 4];
    let mail = mail_with_attachments(
        "Two reports",
        &[("small.xml", "text/xml", small.xml().as_bytes()), ("big.xml", "text/xml", cut)],
    );
    assert!(mail.len() > 1 << 20);
    let result = store.ingest(bytes("cut.eml", mail), &Limits::default()).await.expect("stored as rejected");
    assert_eq!(result.outcome, Outcome::Rejected);
    assert!(
        result.error.as_deref().is_some_and(|e| e.contains("big.xml") && e.contains("truncated")),
        "{:?}",
        result.error
    );
    assert_eq!(result.reports_stored, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, 1);
    // Nothing of the cut report in the rollups; the small one counted once.
    assert_eq!(scalar(&pool, "SELECT count(*) FROM aggregate_rollup_daily WHERE org_name = 'Big Example'").await, 0);
    assert_rollups_match_records(&pool).await;
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn the_same_report_arriving_at_once_is_stored_once(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let report = ReportBuilder::new("Race Example", "race-1", "example.com", NOV_2)
        .record("192.0.2.1", 10, "none", "pass", "pass")
        .record("198.51.100.2", 3, "reject", "fail", "fail");
    let xml = report.xml().into_bytes();
    let containers = vec![
        bytes("race.xml", xml.clone()),
        bytes("race.xml.gz", gzip(&xml)),
        bytes("race.zip", zip(&[("race.xml", &xml)])),
        bytes(
            "race.eml",
            mail_with_attachment("Report Domain: example.com", "race.xml.gz", "application/gzip", &gzip(&xml)),
        ),
    ];
    let tasks: Vec<_> = containers
        .into_iter()
        .map(|envelope| {
            tokio::spawn({
                let store = store.clone();
                async move { store.ingest(envelope, &Limits::default()).await }
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("the task ran").expect("stored").outcome);
    }
    outcomes.sort_by_key(|o| o.as_str());
    assert_eq!(outcomes, [Outcome::Duplicate, Outcome::Duplicate, Outcome::Duplicate, Outcome::Stored]);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, 2);
}

#[tokio::test]
async fn an_unreachable_database_is_a_transient_error() {
    // Port 9 (discard) refuses connections on any sane machine.
    let err = Store::connect("postgres://nobody@127.0.0.1:9/nothing", 2).await.expect_err("nothing listens there");
    assert!(err.is_transient(), "{err}");
    assert!(matches!(err, StoreError::Database(_)));
}

/// The same report id, domain and period as `report(serial)`: the natural key of a report.
fn numbered(serial: u32, records: u32) -> Vec<u8> {
    let mut report = ReportBuilder::new("Batch Example", &format!("batch-{serial}"), "example.com", NOV_2);
    for n in 0..records {
        report = report.record(&format!("192.0.2.{}", n + 1), u64::from(n) + 1, "none", "pass", "fail");
    }
    report.xml().into_bytes()
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_batch_stores_what_one_by_one_would(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let earlier = numbered(0, 1);
    let before = ingest(&store, bytes("earlier.xml", earlier.clone())).await;
    let (r1, r2, r3, r4) = (numbered(1, 2), numbered(2, 3), numbered(3, 4), numbered(4, 1));
    let read = |path: &str| std::fs::read(sample(path)).expect("a sample");
    let envelopes = vec![
        bytes("a.xml", r1.clone()),                               // 0 stored
        bytes("b.xml.gz", gzip(&r2)),                             // 1 stored
        bytes("earlier-again.xml", earlier),                      // 2 same bytes as before the batch
        bytes("c.zip", zip(&[("r3.xml", &r3), ("r1.xml", &r1)])), // 3 r3 new, r1 also in 0
        bytes(
            "d.eml", // 4 r2 again: a duplicate of 1
            mail_with_attachment("Report Domain: example.com", "r2.xml.gz", "application/gzip", &gzip(&r2)),
        ),
        bytes("human.eml", read("not-reports/human-reply.eml")), // 5 not a report
        bytes("broken.xml", read("rejected/missing-report-id.xml")), // 6 rejected, stored alone
        bytes("a-again.xml", r1.clone()),                        // 7 same bytes as 0
        bytes("twice.zip", zip(&[("one.xml", &r4), ("two.xml", &r4)])), // 8 the same report twice
    ];
    let results: Vec<InputResult> = store
        .ingest_many(envelopes, &Limits::default())
        .await
        .into_iter()
        .map(|result| result.expect("the database takes every input"))
        .collect();
    let summary: Vec<(Outcome, u32, u32, u64)> =
        results.iter().map(|r| (r.outcome, r.reports_stored, r.reports_duplicate, r.records)).collect();
    assert_eq!(
        summary,
        [
            (Outcome::Stored, 1, 0, 2),
            (Outcome::Stored, 1, 0, 3),
            (Outcome::Duplicate, 0, 0, 0),
            (Outcome::Stored, 1, 1, 4),
            (Outcome::Duplicate, 0, 1, 0),
            (Outcome::NotReport, 0, 0, 0),
            (Outcome::Rejected, 0, 0, 0),
            (Outcome::Duplicate, 0, 0, 0),
            (Outcome::Stored, 1, 1, 1),
        ]
    );
    let links: Vec<Option<i64>> = results.iter().map(|r| r.duplicate_of).collect();
    let id = |n: usize| Some(results[n].input);
    assert_eq!(links, [None, None, Some(before.input), None, id(1), None, None, id(0), None]);

    // The rows say the same as the results, and every report and record is there once.
    let rows: Vec<(String, i32, i32, i64, Option<i64>)> = sqlx::query_as(
        "SELECT outcome, reports_stored, reports_duplicate, records, duplicate_of FROM dmarc_inputs \
         WHERE id = ANY($1) ORDER BY array_position($1, id)",
    )
    .bind(results.iter().map(|r| r.input).collect::<Vec<_>>())
    .fetch_all(&pool)
    .await
    .expect("the input rows");
    let expected: Vec<(String, i32, i32, i64, Option<i64>)> = results
        .iter()
        .map(|r| {
            let (stored, duplicate) = (r.reports_stored as i32, r.reports_duplicate as i32);
            (r.outcome.as_str().to_owned(), stored, duplicate, r.records as i64, r.duplicate_of)
        })
        .collect();
    assert_eq!(rows, expected);
    // All but the rejected input and the second copy of a.xml went in one transaction.
    let together: Vec<i64> = [0, 1, 2, 3, 4, 5, 8].iter().map(|&n| results[n].input).collect();
    let transactions: i64 = sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM inputs WHERE id = ANY($1)")
        .bind(&together)
        .fetch_one(&pool)
        .await
        .expect("the transactions");
    assert_eq!(transactions, 1, "one statement for the batch");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 5);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, 1 + 2 + 3 + 4 + 1);
    let owners: Vec<(String, i64)> =
        sqlx::query_as("SELECT report_id, input FROM dmarc_reports WHERE report_id <> 'batch-0' ORDER BY report_id")
            .fetch_all(&pool)
            .await
            .expect("the reports");
    let owner = |n: usize| results[n].input;
    assert_eq!(
        owners,
        [
            ("batch-1".to_owned(), owner(0)),
            ("batch-2".to_owned(), owner(1)),
            ("batch-3".to_owned(), owner(3)),
            ("batch-4".to_owned(), owner(8))
        ]
    );
    assert_rollups_match_records(&pool).await;
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_batch_the_database_refuses_is_stored_one_by_one(pool: PgPool) {
    // A trigger refusing one report stands for any error the database raises on one input.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.report_id = 'batch-66' THEN RAISE EXCEPTION 'poisoned report'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON aggregate_reports \
         FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&pool)
    .await
    .expect("the trigger");
    let store = Store::from_pool(pool.clone());
    let serials = [1, 2, 66, 3, 4];
    let envelopes = serials.iter().map(|n| bytes(&format!("{n}.xml"), numbered(*n, 1))).collect();
    let results = store.ingest_many(envelopes, &Limits::default()).await;
    for (serial, result) in serials.iter().zip(&results) {
        let result = result.as_ref().unwrap_or_else(|err| panic!("input {serial} was not recorded: {err}"));
        match serial {
            // The database refuses it every time: recorded as rejected, not retried for ever.
            66 => {
                assert_eq!(result.outcome, Outcome::Rejected);
                let error = result.error.as_deref().unwrap_or_default();
                assert!(error.starts_with("the database refused it: ") && error.contains("poisoned report"), "{error}");
            }
            _ => assert_eq!(result.outcome, Outcome::Stored),
        }
    }
    // Each alone, in its own transaction.
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 5);
    assert_eq!(scalar(&pool, "SELECT count(DISTINCT xmin::text) FROM inputs").await, 5);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 4);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE stage = 'store'").await, 1);
}

/// A report of `records` copies of one record with three DKIM and three SPF results, the last
/// of each with a human result written with a backslash before `u0000` (text, not a NUL).
fn many_results(report_id: &str, records: usize) -> Vec<u8> {
    let header = ReportBuilder::new("Results Example", report_id, "example.com", NOV_2).xml();
    let record = "  <record>\n    <row>\n      <source_ip>192.0.2.7</source_ip>\n      <count>3</count>\n      \
        <policy_evaluated>\n        <disposition>none</disposition>\n        <dkim>pass</dkim>\n        \
        <spf>fail</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n      \
        <header_from>example.com</header_from>\n    </identifiers>\n    <auth_results>\n      \
        <dkim><domain>example.com</domain><selector>s1</selector><result>pass</result></dkim>\n      \
        <dkim><domain>esp.example</domain><selector>s2</selector><result>fail</result></dkim>\n      \
        <dkim><domain>other.example</domain><result>neutral</result><human_result>key \\u0000 &lt;b&gt;</human_result></dkim>\n      \
        <spf><domain>example.com</domain><scope>mfrom</scope><result>fail</result></spf>\n      \
        <spf><domain>bounce.esp.example</domain><scope>mfrom</scope><result>pass</result></spf>\n      \
        <spf><domain>helo.example</domain><scope>helo</scope><result>softfail</result><human_result>\"quoted\"</human_result></spf>\n    \
        </auth_results>\n  </record>\n";
    let mut xml = header.strip_suffix("</feedback>\n").expect("the builder ends the document").to_owned();
    for _ in 0..records {
        xml.push_str(record);
    }
    xml.push_str("</feedback>\n");
    xml.into_bytes()
}

/// The DKIM and SPF results after the first are kept in `auth_more` as JSON, the same whether
/// the records go as rows of a statement (a small report) or by COPY (a streamed one).
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn results_after_the_first_are_kept_as_json_by_every_route(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let small = ingest(&store, bytes("small.xml", many_results("small", 1))).await;
    let large_xml = many_results("large", 6_000);
    assert!(large_xml.len() > 2 << 20, "large enough to be streamed");
    let large = ingest(&store, bytes("large.xml", large_xml)).await;
    assert_eq!((small.outcome, large.outcome), (Outcome::Stored, Outcome::Stored));
    let expected = serde_json::json!({
        "dkim": [
            {"domain": "esp.example", "selector": "s2", "result": "fail", "human_result": null},
            {"domain": "other.example", "selector": null, "result": "neutral", "human_result": "key \\u0000 <b>"},
        ],
        "spf": [
            {"domain": "bounce.esp.example", "scope": "mfrom", "result": "pass", "human_result": null},
            {"domain": "helo.example", "scope": "helo", "result": "softfail", "human_result": "\"quoted\""},
        ],
    });
    let stored: Vec<(String, i16, i16, serde_json::Value, i64)> = sqlx::query_as(
        "SELECT r.report_id, d.dkim_count, d.spf_count, d.auth_more, count(*) \
         FROM aggregate_records d JOIN aggregate_reports r ON r.id = d.report \
         GROUP BY 1, 2, 3, 4 ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("records");
    assert_eq!(
        stored,
        vec![("large".to_owned(), 3, 3, expected.clone(), 6_000), ("small".to_owned(), 3, 3, expected, 1),]
    );
}
