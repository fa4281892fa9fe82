//! Inputs that fail the same way every time are recorded, never retried for ever: each class an
//! adversarial run found (counts that overflow sums, NUL where text reaches PostgreSQL, keys too
//! long for an index, absurdly many results in a record, anything else the database refuses)
//! ends as `rejected` with its reason and its bytes kept, and breaks nothing for other inputs.

mod common;

use std::path::PathBuf;

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::testkit::ReportBuilder;
use dmarcpipe_store::rollup::{self, Count, RollupFilter, RollupKey};
use dmarcpipe_store::{InputResult, Outcome, Store};
use sqlx::PgPool;

const NOV_2: u64 = 1_793_577_600; // 2026-11-02T00:00:00Z

fn bytes(name: &str, bytes: Vec<u8>) -> Envelope {
    Envelope::new(Origin::File { path: PathBuf::from(name) }, Payload::Bytes(bytes))
}

async fn ingest(store: &Store, envelope: Envelope) -> InputResult {
    store.ingest(envelope, &Limits::default()).await.expect("recorded, not a transient failure")
}

/// A one-record report with `count` messages, its XML edited by `edit`.
fn report(id: &str, count: &str, edit: impl Fn(String) -> String) -> Vec<u8> {
    let xml = ReportBuilder::new("reporter.example", id, "example.com", NOV_2)
        .record("192.0.2.1", 7, "none", "pass", "pass")
        .xml()
        .replace("<count>7</count>", &format!("<count>{count}</count>"));
    edit(xml).into_bytes()
}

/// The input's row: outcome, stage, error, and whether its bytes were kept.
async fn row(pool: &PgPool, input: i64) -> (String, Option<String>, String, bool) {
    sqlx::query_as("SELECT outcome, stage, coalesce(error, ''), payload_kept FROM dmarc_inputs WHERE id = $1")
        .bind(input)
        .fetch_one(pool)
        .await
        .expect("the input's row")
}

async fn assert_rejected_and_kept(pool: &PgPool, result: &InputResult, reason: &str) {
    assert_eq!(result.outcome, Outcome::Rejected, "{result:?}");
    let (outcome, stage, error, kept) = row(pool, result.input).await;
    assert_eq!(outcome, "rejected");
    assert!(stage.is_some(), "a stage");
    assert!(error.contains(reason), "`{reason}` in `{error}`");
    assert!(kept, "the bytes are kept for reprocess");
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn counts_that_would_overflow_sums_are_refused_and_other_rollups_go_on(pool: PgPool) {
    let (store, _) = common::sealing_store(&pool);
    let max = i64::MAX.to_string();
    let two_records = |xml: String| {
        let record = &xml[xml.find("<record>").expect("a record")..xml.find("</record>").expect("its end") + 9];
        xml.replace("</feedback>", &format!("{record}</feedback>"))
    };
    let poisoned = ingest(&store, bytes("max.xml", report("max", &max, two_records))).await;
    assert_rejected_and_kept(&pool, &poisoned, "add up to more than 1099511627776").await;
    let too_large = ingest(&store, bytes("huge.xml", report("huge", "99999999999999999999", |xml| xml))).await;
    assert_rejected_and_kept(&pool, &too_large, "is too large").await;

    let fine = ingest(&store, bytes("fine.xml", report("fine", "7", |xml| xml))).await;
    assert_eq!(fine.outcome, Outcome::Stored);
    let rows = rollup::query(&pool, RollupKey::Domain, &RollupFilter::default()).await.expect("rollups answer");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].messages, Count(7));

    // Sums beyond 64 bits stay exact: rows as many reports of the largest size would leave.
    sqlx::query(
        "INSERT INTO aggregate_rollup_daily (day, policy_domain, org_name, disposition, dkim_aligned, spf_aligned, \
             messages, records) \
         SELECT '2026-11-02', 'example.com', 'reporter.example', 'none', 'pass', 'pass', 4611686018427387904, 1 \
         FROM generate_series(1, 4)",
    )
    .execute(&pool)
    .await
    .expect("rows");
    let rows = rollup::query(&pool, RollupKey::Domain, &RollupFilter::default()).await.expect("rollups answer");
    assert_eq!(rows[0].messages, Count(4 * 4_611_686_018_427_387_904 + 7));
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn nul_in_what_reaches_the_database_is_removed_or_replaced(pool: PgPool) {
    let (store, _) = common::sealing_store(&pool);
    // NUL in an element name: the reason quoting it goes into the input's error and warnings.
    let named =
        ingest(&store, bytes("named.xml", b"<?xml version=\"1.0\"?><feed\0back><x/></feed\0back>".to_vec())).await;
    assert_eq!(named.outcome, Outcome::NotReport);
    let warnings: String = sqlx::query_scalar("SELECT warnings::text FROM dmarc_inputs WHERE id = $1")
        .bind(named.input)
        .fetch_one(&pool)
        .await
        .expect("warnings");
    assert!(warnings.contains("feed\u{FFFD}back"), "{warnings}");

    // NUL in a failure report's fields.
    let arf = "From: abuse@reporter.example\r\nTo: ruf@example.com\r\nSubject: failure\r\nMIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n\
        Content-Type: text/plain\r\n\r\nA failure.\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\n\
        Feedback-Type: auth-failure\r\nAuth-Failure: dmarc\r\nReported-Domain: exa\0mple.com\r\n\
        Source-IP: 192.0.2.9\r\nArrival-Date: Mon, 2 Nov 2026 10:00:00 +0000\r\n\r\n--b\r\n\
        Content-Type: text/rfc822-headers\r\n\r\nFrom: someone@example.com\r\n\r\n--b--\r\n";
    let forensic = ingest(&store, bytes("arf.eml", arf.as_bytes().to_vec())).await;
    assert_eq!(forensic.outcome, Outcome::Stored, "{forensic:?}");
    let (domain, warnings): (String, String) =
        sqlx::query_as("SELECT reported_domain, warnings::text FROM dmarc_forensic WHERE input = $1")
            .bind(forensic.input)
            .fetch_one(&pool)
            .await
            .expect("the report");
    assert_eq!(domain, "example.com");
    assert!(warnings.contains("nul_removed"), "{warnings}");
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn keys_too_long_for_an_index_are_refused_with_a_reason(pool: PgPool) {
    let (store, _) = common::sealing_store(&pool);
    let long = "x".repeat(2_700);
    for (name, xml, reason) in [
        ("org.xml", report("1", "1", |xml| xml.replace("reporter.example", &long)), "<org_name> of 2700 bytes"),
        (
            "id.xml",
            report("1", "1", |xml| xml.replace("<report_id>1<", &format!("<report_id>{long}<"))),
            "<report_id> of 2700",
        ),
        (
            "domain.xml",
            report("1", "1", |xml| {
                xml.replace("<domain>example.com</domain>", &format!("<domain>{long}.example</domain>"))
            }),
            "<domain> of <policy_published>",
        ),
    ] {
        let result = ingest(&store, bytes(name, xml)).await;
        assert_rejected_and_kept(&pool, &result, reason).await;
    }
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_record_with_absurdly_many_results_is_refused(pool: PgPool) {
    let (store, _) = common::sealing_store(&pool);
    let many = |xml: String| {
        let dkim = "<dkim><domain>example.com</domain><result>pass</result></dkim>".repeat(32_768);
        xml.replacen("<dkim>", &format!("{dkim}<dkim>"), 1)
    };
    // The first <dkim> is the policy_evaluated one: put them in auth_results instead.
    let xml = report("many", "1", |xml| {
        let at = xml.find("<auth_results>").expect("auth_results") + "<auth_results>".len();
        let (head, tail) = xml.split_at(at);
        format!("{head}{}", many(tail.to_owned()))
    });
    let result = ingest(&store, bytes("many.xml", xml)).await;
    assert_rejected_and_kept(&pool, &result, "DKIM results; more than 1000 are refused").await;
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn whatever_else_the_database_refuses_is_recorded_as_rejected_with_the_bytes_kept(pool: PgPool) {
    // A check the data breaks stands for any refusal of the database's own that no retry cures.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.report_id = 'poison' THEN RAISE EXCEPTION USING ERRCODE = '22023', \
         MESSAGE = 'value out of what this deployment accepts'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse_poison BEFORE INSERT ON aggregate_reports FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .execute(&pool)
    .await
    .expect("the trigger");
    let (store, opener) = common::sealing_store(&pool);
    let result = ingest(&store, bytes("poison.xml", report("poison", "3", |xml| xml))).await;
    assert_rejected_and_kept(&pool, &result, "the database refused it").await;
    let (_, stage, _, _) = row(&pool, result.input).await;
    assert_eq!(stage.as_deref(), Some("store"));

    // Once the cause is gone, reprocess stores it from the kept bytes.
    sqlx::raw_sql("DROP TRIGGER refuse_poison ON aggregate_reports").execute(&pool).await.expect("dropped");
    let again =
        store.reprocess(result.input, &Limits::default(), Some(&opener)).await.expect("reprocessed").expect("claimed");
    assert_eq!((again.outcome, again.messages), (Outcome::Stored, 3));
}
