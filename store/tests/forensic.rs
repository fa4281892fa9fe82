//! Failure (forensic) reports against a real PostgreSQL: clear columns, sealed samples,
//! deduplication, and what happens without recipients.

mod common;

use std::path::PathBuf;

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_store::forensic::{self, CountKey, ForensicFilter};
use dmarcpipe_store::rollup::RollupFilter;
use dmarcpipe_store::{InputResult, Outcome, Store};
use sqlx::PgPool;

/// A DMARC failure report whose original carries `marker` in its subject, a recipient and its
/// body; `received` is the first header line, which differs by delivery path.
fn arf_mail(marker: &str, received: &str, body_lines: usize) -> String {
    let body: String = (0..body_lines).map(|n| format!("line {n} of the body {marker}\r\n")).collect();
    format!(
        "Received: {received}\r\n\
         From: ruf@receiver.example\r\nTo: ruf@example.com\r\nSubject: FW: Invoice {marker}\r\n\
         Date: Mon, 02 Nov 2026 10:00:05 +0000\r\nMessage-ID: <r-{marker}@receiver.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"B\"\r\n\r\n\
         --B\r\nContent-Type: text/plain\r\n\r\nA message claiming to be from example.com failed DMARC.\r\n\
         --B\r\nContent-Type: message/feedback-report\r\n\r\n\
         Feedback-Type: auth-failure\r\nUser-Agent: Receiver/2.0\r\nVersion: 1\r\n\
         Original-Mail-From: <bounce@example.com>\r\nOriginal-Rcpt-To: <{marker}@receiver.example>\r\n\
         Arrival-Date: Mon, 02 Nov 2026 10:00:00 +0000\r\nReporting-MTA: dns; mx.receiver.example\r\n\
         Source-IP: 192.0.2.77\r\nReported-Domain: example.com\r\nAuth-Failure: dmarc\r\n\
         Authentication-Results: receiver.example; dmarc=fail header.from=example.com\r\n\
         Identity-Alignment: none\r\nDelivery-Result: reject\r\nDKIM-Domain: example.com\r\nDKIM-Selector: s1\r\n\r\n\
         --B\r\nContent-Type: message/rfc822\r\n\r\n\
         From: billing@example.com\r\nTo: {marker}@receiver.example\r\nSubject: Invoice {marker}\r\n\
         Message-ID: <o-{marker}@example.com>\r\n\r\n{body}\
         --B--\r\n"
    )
}

fn bytes(name: &str, text: String) -> Envelope {
    Envelope::new(Origin::File { path: PathBuf::from(name) }, Payload::Bytes(text.into_bytes()))
}

async fn ingest(store: &Store, envelope: Envelope) -> InputResult {
    store.ingest(envelope, &Limits::default()).await.expect("the database takes the input")
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_failure_report_is_stored_in_clear_columns_with_its_mail_sealed(pool: PgPool) {
    let (store, opener) = common::sealing_store(&pool);
    let mail = arf_mail("MARKER-7f3a", "from mx1.receiver.example", 3);
    let result = ingest(&store, bytes("report.eml", mail.clone())).await;
    assert_eq!((result.outcome, result.reports_stored, result.forensic_stored), (Outcome::Stored, 1, 1));

    let rows = forensic::list(&pool, &ForensicFilter::default()).await.expect("listed");
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row.input, result.input);
    assert_eq!(row.feedback_type, "auth-failure");
    assert_eq!(row.auth_failure.as_deref(), Some("dmarc"));
    assert_eq!(row.reported_domain.as_deref(), Some("example.com"));
    assert_eq!(row.source_ip.map(|ip| ip.ip().to_string()).as_deref(), Some("192.0.2.77"));
    assert_eq!(row.reporting_mta.as_deref(), Some("mx.receiver.example"));
    assert_eq!(row.delivery_result.as_deref(), Some("reject"));
    assert_eq!((row.dkim_domain.as_deref(), row.dkim_selector.as_deref()), (Some("example.com"), Some("s1")));
    assert_eq!(row.identity_alignment.as_deref(), Some("none"));
    assert_eq!(row.original_mail_from.as_deref(), Some("bounce@example.com"));
    assert_eq!(row.arrival_date.map(|t| t.timestamp()), Some(1_793_613_600));
    assert!(row.sample_kept);

    let (_, sealed) = forensic::find(&pool, row.id).await.expect("found").expect("the report");
    let sealed = sealed.expect("a sample");
    assert_eq!(row.sealed_sha256.as_ref().map(String::len), Some(64));
    assert_eq!(opener.open(&sealed).expect("opened"), mail.as_bytes());

    // Nothing of the original is in any clear column of any table.
    let clear: Vec<String> = sqlx::query_scalar(
        "SELECT f::text FROM forensic_reports f UNION ALL SELECT i::text FROM inputs i \
         UNION ALL SELECT encode(s.sealed, 'escape') FROM forensic_samples s",
    )
    .fetch_all(&pool)
    .await
    .expect("rows as text");
    assert_eq!(clear.len(), 3);
    assert!(clear.iter().all(|text| !text.contains("MARKER-7f3a")), "{clear:#?}");
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn the_same_report_by_another_path_is_a_duplicate(pool: PgPool) {
    let (store, _) = common::sealing_store(&pool);
    let first = ingest(&store, bytes("a.eml", arf_mail("dup", "from mx1.receiver.example", 3))).await;
    let second = ingest(&store, bytes("b.eml", arf_mail("dup", "from mx2.receiver.example", 3))).await;
    assert_eq!(first.outcome, Outcome::Stored);
    assert_eq!((second.outcome, second.duplicate_of), (Outcome::Duplicate, Some(first.input)));
    assert_eq!(second.reports_duplicate, 1);
    let other = ingest(&store, bytes("c.eml", arf_mail("other", "from mx1.receiver.example", 3))).await;
    assert_eq!(other.outcome, Outcome::Stored);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM dmarc_forensic").fetch_one(&pool).await.expect("n");
    assert_eq!(count, 2);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn without_recipients_only_the_clear_fields_are_stored(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let result = ingest(&store, bytes("report.eml", arf_mail("nokey", "from mx1.receiver.example", 3))).await;
    assert_eq!(result.outcome, Outcome::Stored);
    let (samples, kept): (i64, bool) =
        sqlx::query_as("SELECT (SELECT count(*) FROM forensic_samples), bool_or(sample_kept) FROM dmarc_forensic")
            .fetch_one(&pool)
            .await
            .expect("counted");
    assert_eq!((samples, kept), (0, false));
    let warnings: serde_json::Value = sqlx::query_scalar("SELECT warnings FROM dmarc_inputs WHERE id = $1")
        .bind(result.input)
        .fetch_one(&pool)
        .await
        .expect("the input");
    assert!(warnings.to_string().contains("sample_not_kept"), "{warnings}");

    // A rejected input is not kept in clear either.
    let broken = ingest(&store, bytes("broken.xml", "<feedback><report_metadata>".into())).await;
    assert_eq!(broken.outcome, Outcome::Rejected);
    let (kept, warnings): (bool, serde_json::Value) =
        sqlx::query_as("SELECT payload_kept, warnings FROM dmarc_inputs WHERE id = $1")
            .bind(broken.input)
            .fetch_one(&pool)
            .await
            .expect("the input");
    assert!(!kept);
    assert!(warnings.to_string().contains("payload_not_kept"), "{warnings}");
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn a_large_failure_report_takes_the_streaming_route(pool: PgPool) {
    let (store, opener) = common::sealing_store(&pool);
    // Over a megabyte: read from a file on the route that writes as it reads.
    let mail = arf_mail("large", "from mx1.receiver.example", 40_000);
    assert!(mail.len() > 1 << 20);
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("large.eml");
    std::fs::write(&path, &mail).expect("written");
    let result = ingest(&store, Envelope::new(Origin::File { path: path.clone() }, Payload::File(path))).await;
    assert_eq!((result.outcome, result.forensic_stored), (Outcome::Stored, 1));
    let rows = forensic::list(&pool, &ForensicFilter::default()).await.expect("listed");
    let (_, sealed) = forensic::find(&pool, rows[0].id).await.expect("found").expect("the report");
    assert_eq!(opener.open(&sealed.expect("a sample")).expect("opened"), mail.as_bytes());
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn failure_reports_are_listed_and_counted_by_domain_source_day_and_type(pool: PgPool) {
    let (store, _) = common::sealing_store(&pool);
    for marker in ["a", "b"] {
        ingest(&store, bytes("r.eml", arf_mail(marker, "from mx1.receiver.example", 1))).await;
    }
    let spf = arf_mail("c", "from mx1.receiver.example", 1)
        .replace("Auth-Failure: dmarc", "Auth-Failure: spf")
        .replace("Reported-Domain: example.com", "Reported-Domain: example.org")
        .replace("Source-IP: 192.0.2.77", "Source-IP: 2001:db8::5");
    ingest(&store, bytes("c.eml", spf)).await;

    let only = ForensicFilter { domain: Some("Example.ORG".into()), ..ForensicFilter::default() };
    let rows = forensic::list(&pool, &only).await.expect("listed");
    assert_eq!(rows.iter().map(|r| r.auth_failure.as_deref()).collect::<Vec<_>>(), vec![Some("spf")]);
    let since =
        ForensicFilter { since: chrono::DateTime::from_timestamp(1_793_700_000, 0), ..ForensicFilter::default() };
    assert!(forensic::list(&pool, &since).await.expect("listed").is_empty());

    let all = RollupFilter::default();
    let mut by_domain = forensic::counts(&pool, CountKey::Domain, &all).await.expect("counted");
    by_domain.sort();
    assert_eq!(by_domain, vec![(Some("example.com".into()), 2), (Some("example.org".into()), 1)]);
    let mut by_source = forensic::counts(&pool, CountKey::Source, &all).await.expect("counted");
    by_source.sort();
    assert_eq!(by_source, vec![(Some("192.0.2.77".into()), 2), (Some("2001:db8::5".into()), 1)]);
    let by_day = forensic::counts(&pool, CountKey::Day, &all).await.expect("counted");
    assert_eq!(by_day, vec![(Some("2026-11-02".into()), 3)]);
    let domain_only = RollupFilter { domain: Some("example.com".into()), ..RollupFilter::default() };
    let by_source = forensic::counts(&pool, CountKey::Source, &domain_only).await.expect("counted");
    assert_eq!(by_source, vec![(Some("192.0.2.77".into()), 2)]);

    let by_type = forensic::by_auth_failure(&pool, &all).await.expect("counted");
    let summary: Vec<(&str, i64, i64)> =
        by_type.iter().map(|r| (r.auth_failure.as_str(), r.reports, r.domains)).collect();
    assert_eq!(summary, vec![("dmarc", 2, 1), ("spf", 1, 1)]);
}
