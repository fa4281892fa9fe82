//! The enrichment queue against a real PostgreSQL: every route that stores records queues
//! their distinct sources once; enrichers share due rows without taking one twice (SKIP
//! LOCKED); what is recorded, and when an address is due again (PTR TTL, backoff after
//! transient failures, refresh), keeping the older good answer; `--stale` and `--all`.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::enrich::dns::{PtrAnswer, PtrStatus};
use dmarcpipe_ingest::enrich::enricher::{Enrichment, KnownPtr};
use dmarcpipe_ingest::enrich::geo::GeoFacts;
use dmarcpipe_ingest::enrich::senders::{SenderKind, SenderMatch};
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng};
use dmarcpipe_store::enrich::{
    Schedule, Staleness, claim_due, count_due, mark_all_due, mark_stale_due, queue_all_sources, record,
};
use dmarcpipe_store::{Outcome, Store};
use sqlx::PgPool;

const NOV_2: u64 = 1_793_577_600; // 2026-11-02T00:00:00Z

fn bytes(name: &str, bytes: Vec<u8>) -> Envelope {
    Envelope::new(Origin::File { path: PathBuf::from(name) }, Payload::Bytes(bytes))
}

fn report(id: &str, sources: &[&str]) -> Envelope {
    let mut builder = ReportBuilder::new("Reporter", id, "example.com", NOV_2);
    for source in sources {
        builder = builder.record(source, 3, "none", "pass", "fail");
    }
    bytes(&format!("{id}.xml"), builder.xml().into_bytes())
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// The queued addresses, and those of the records: equal when every source was queued.
async fn queued_and_recorded(pool: &PgPool) -> (BTreeSet<IpAddr>, BTreeSet<IpAddr>) {
    let queued: Vec<IpAddr> = sqlx::query_scalar("SELECT ip FROM source_ips").fetch_all(pool).await.expect("rows");
    let recorded: Vec<IpAddr> =
        sqlx::query_scalar("SELECT DISTINCT source_ip FROM aggregate_records WHERE source_ip IS NOT NULL")
            .fetch_all(pool)
            .await
            .expect("records");
    (queued.into_iter().collect(), recorded.into_iter().collect())
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn every_route_queues_the_distinct_sources_once(pool: PgPool) {
    let (store, opener) = common::sealing_store(&pool);

    // Small inputs stored together in one transaction, sharing sources.
    let results = store
        .ingest_many(
            vec![
                report("batch-1", &["192.0.2.1", "192.0.2.2", "192.0.2.1"]),
                report("batch-2", &["192.0.2.2", "2001:db8::7", "not-an-address"]),
            ],
            &Limits::default(),
        )
        .await;
    assert!(results.iter().all(|result| result.as_ref().is_ok_and(|r| r.outcome == Outcome::Stored)), "{results:?}");
    let (queued, recorded) = queued_and_recorded(&pool).await;
    assert_eq!(queued, [ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::7")].into_iter().collect());
    assert_eq!(queued, recorded);
    assert_eq!(count_due(&pool).await.expect("counted"), 3, "new addresses are due at once");

    // An address enriched since is left as it is when it is seen again.
    sqlx::query(
        "UPDATE source_ips SET ptr_name = 'kept.example', enrich_due = now() + interval '1 day' \
         WHERE ip = '192.0.2.1'",
    )
    .execute(&pool)
    .await
    .expect("updated");
    let again = store.ingest(report("single", &["192.0.2.1", "198.51.100.4"]), &Limits::default()).await;
    assert_eq!(again.expect("stored").outcome, Outcome::Stored);
    let (name, due_later): (Option<String>, bool) =
        sqlx::query_as("SELECT ptr_name, enrich_due > now() FROM source_ips WHERE ip = '192.0.2.1'")
            .fetch_one(&pool)
            .await
            .expect("the row");
    assert_eq!((name.as_deref(), due_later), (Some("kept.example"), true));

    // A large report, streamed while parsed.
    let mut rng = Rng(7);
    let large = ReportBuilder::new("Large Example", "large-1", "example.org", NOV_2).random_records(12_000, &mut rng);
    let result = store.ingest(bytes("large.xml", large.xml().into_bytes()), &Limits::default()).await;
    assert_eq!(result.expect("stored").records, 12_000);
    let (queued, recorded) = queued_and_recorded(&pool).await;
    assert!(recorded.len() > 1_000, "{} sources", recorded.len());
    assert_eq!(queued, recorded, "the streamed report's sources are queued");

    // A rejected input run again by reprocess.
    let strict = Limits { max_xml_depth: 3, ..Limits::default() };
    let rejected = store.ingest(report("kept-1", &["203.0.113.9"]), &strict).await.expect("recorded");
    assert_eq!(rejected.outcome, Outcome::Rejected);
    let (queued, _) = queued_and_recorded(&pool).await;
    assert!(!queued.contains(&ip("203.0.113.9")));
    let fixed = store.reprocess(rejected.input, &Limits::default(), Some(&opener)).await.expect("runs");
    assert_eq!(fixed.expect("claimed").outcome, Outcome::Stored);
    let (queued, recorded) = queued_and_recorded(&pool).await;
    assert!(queued.contains(&ip("203.0.113.9")));
    assert_eq!(queued, recorded);
}

/// `count` due addresses 10.0.x.y.
async fn due_rows(pool: &PgPool, count: i64) {
    sqlx::query("INSERT INTO source_ips (ip) SELECT '10.0.0.0'::inet + n FROM generate_series(1, $1) n")
        .bind(count)
        .execute(pool)
        .await
        .expect("rows");
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn two_enrichers_take_every_due_address_exactly_once(pool: PgPool) {
    due_rows(&pool, 3_000).await;
    let lease = Duration::from_secs(600);
    let enricher = |pool: PgPool| async move {
        let mut taken = Vec::new();
        loop {
            let tasks = claim_due(&pool, 37, lease).await.expect("claimed");
            if tasks.is_empty() {
                return taken;
            }
            taken.extend(tasks.into_iter().map(|task| task.ip));
            tokio::task::yield_now().await;
        }
    };
    let (first, second) = tokio::join!(tokio::spawn(enricher(pool.clone())), tokio::spawn(enricher(pool.clone())));
    let (first, second) = (first.expect("first"), second.expect("second"));
    let all: BTreeSet<IpAddr> = first.iter().chain(&second).copied().collect();
    assert_eq!(first.len() + second.len(), 3_000, "no address taken twice");
    assert_eq!(all.len(), 3_000, "every address taken");
    assert_eq!(count_due(&pool).await.expect("counted"), 0, "the lease pushed every address forward");
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn addresses_locked_by_another_enricher_are_skipped_not_waited_for(pool: PgPool) {
    due_rows(&pool, 10).await;
    // Another enricher in the middle of its claim holds the first four rows.
    let mut other = pool.begin().await.expect("a transaction");
    let held: Vec<IpAddr> = sqlx::query_scalar(
        "SELECT ip FROM source_ips WHERE enrich_due <= now() ORDER BY ip LIMIT 4 FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(&mut *other)
    .await
    .expect("locked");
    let claimed = tokio::time::timeout(Duration::from_secs(5), claim_due(&pool, 100, Duration::from_secs(600)))
        .await
        .expect("does not wait for the locks")
        .expect("claimed");
    let claimed: BTreeSet<IpAddr> = claimed.into_iter().map(|task| task.ip).collect();
    assert_eq!(claimed.len(), 6);
    assert!(held.iter().all(|ip| !claimed.contains(ip)), "{held:?} {claimed:?}");
    other.rollback().await.expect("released");
    // Released, they are still due: the next claim takes them.
    let rest: BTreeSet<IpAddr> = claim_due(&pool, 100, Duration::from_secs(600))
        .await
        .expect("claimed")
        .into_iter()
        .map(|task| task.ip)
        .collect();
    assert_eq!(rest, held.into_iter().collect());
}

fn answer(status: PtrStatus, name: Option<&str>, ttl: u64) -> PtrAnswer {
    PtrAnswer {
        status,
        names: name.map(|name| vec![name.to_owned(), "other.example.net".to_owned()]).unwrap_or_default(),
        name: name.map(str::to_owned),
        confirmed: name.map(|_| true),
        base_domain: name.map(|name| name.split_once('.').map_or(name, |(_, rest)| rest).to_owned()),
        ttl: Duration::from_secs(ttl),
        detail: None,
    }
}

fn facts(country: &str, source: &str) -> GeoFacts {
    GeoFacts {
        country_code: Some(country.to_owned()),
        country_name: Some(format!("Country {country}")),
        region: Some("Region".to_owned()),
        city: Some("City".to_owned()),
        latitude: Some(1.5),
        longitude: Some(-2.5),
        geo_source: Some(source.to_owned()),
        asn: Some(64500),
        as_org: Some("Example Net".to_owned()),
        asn_source: Some(source.to_owned()),
    }
}

/// Seconds from now to the row's `enrich_due` and `ptr_expires`, its failures, status and name.
async fn schedule_of(pool: &PgPool, address: &str) -> (f64, Option<f64>, i32, Option<String>, Option<String>) {
    sqlx::query_as(
        "SELECT extract(epoch FROM enrich_due - now())::float8, extract(epoch FROM ptr_expires - now())::float8, \
             ptr_failures, ptr_status, ptr_name FROM source_ips WHERE ip = $1::inet",
    )
    .bind(address)
    .fetch_one(pool)
    .await
    .expect("the row")
}

fn near(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() < 30.0
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn recorded_answers_set_the_next_look_and_transient_failures_back_off(pool: PgPool) {
    sqlx::query("INSERT INTO source_ips (ip) VALUES ('192.0.2.1'), ('192.0.2.2'), ('192.0.2.3')")
        .execute(&pool)
        .await
        .expect("rows");
    let schedule = Schedule::default();
    let sender = SenderMatch { name: "Example Mail".into(), kind: SenderKind::Esp, evidence: "a test rule".into() };
    let found = Enrichment {
        ip: ip("192.0.2.1"),
        ptr: Some(answer(PtrStatus::Found, Some("mta1.mail.example.com"), 3_600)),
        geo: Some(facts("DE", "test-city 2026-11-28")),
        sender: Some(sender.clone()),
    };
    let nothing_known = Enrichment {
        ip: ip("192.0.2.2"),
        ptr: Some(answer(PtrStatus::Timeout, None, 300)),
        geo: Some(GeoFacts::default()),
        sender: None,
    };
    let without_dns = Enrichment { ip: ip("192.0.2.3"), ptr: None, geo: None, sender: None };
    let written =
        record(&pool, &[found.clone(), nothing_known.clone(), without_dns], &schedule).await.expect("recorded");
    assert_eq!(written, 3);

    // Found: every part, kept until the TTL runs out.
    let ptr: (Vec<String>, bool, String) =
        sqlx::query_as("SELECT ptr_names, ptr_confirmed, ptr_base_domain FROM source_ips WHERE ip = '192.0.2.1'")
            .fetch_one(&pool)
            .await
            .expect("the row");
    assert_eq!(
        ptr,
        (vec!["mta1.mail.example.com".to_owned(), "other.example.net".to_owned()], true, "mail.example.com".to_owned())
    );
    let place: (String, String, f64, f64, String) = sqlx::query_as(
        "SELECT country_code, city, latitude, longitude, geo_source FROM source_ips WHERE ip = '192.0.2.1'",
    )
    .fetch_one(&pool)
    .await
    .expect("the row");
    assert_eq!(place, ("DE".into(), "City".into(), 1.5, -2.5, "test-city 2026-11-28".into()));
    let network_and_sender: (i64, String, String, String, String) = sqlx::query_as(
        "SELECT asn, as_org, sender_name, sender_kind, sender_evidence FROM source_ips WHERE ip = '192.0.2.1'",
    )
    .fetch_one(&pool)
    .await
    .expect("the row");
    assert_eq!(
        network_and_sender,
        (64500, "Example Net".into(), "Example Mail".into(), "esp".into(), "a test rule".into())
    );
    let (due, expires, failures, status, _) = schedule_of(&pool, "192.0.2.1").await;
    assert!(near(due, 3_600.0) && expires.is_some_and(|e| near(e, 3_600.0)), "{due} {expires:?}");
    assert_eq!((failures, status.as_deref()), (0, Some("found")));

    // A timeout with nothing known before: said so, retried after the first backoff.
    let (due, expires, failures, status, name) = schedule_of(&pool, "192.0.2.2").await;
    assert!(near(due, 300.0) && expires.is_none(), "{due} {expires:?}");
    assert_eq!((failures, status.as_deref(), name), (1, Some("timeout"), None));

    // Without DNS: the PTR columns as they were, the geography too, due after the refresh.
    let (due, expires, failures, status, _) = schedule_of(&pool, "192.0.2.3").await;
    assert!(near(due, schedule.refresh.as_secs_f64()) && expires.is_none() && status.is_none(), "{due}");
    assert_eq!(failures, 0);

    // The refresh of the found address times out, twice: the good answer stays, the wait doubles.
    let claimed = {
        sqlx::query("UPDATE source_ips SET enrich_due = now() WHERE ip = '192.0.2.1'")
            .execute(&pool)
            .await
            .expect("due");
        claim_due(&pool, 10, schedule.lease).await.expect("claimed")
    };
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        claimed[0].known,
        KnownPtr {
            name: Some("mta1.mail.example.com".into()),
            confirmed: Some(true),
            base_domain: Some("mail.example.com".into())
        }
    );
    let timed_out = Enrichment { ptr: Some(answer(PtrStatus::Timeout, None, 300)), ..found.clone() };
    for (attempt, wait) in [(1, 300.0), (2, 600.0), (3, 1_200.0)] {
        record(&pool, std::slice::from_ref(&timed_out), &schedule).await.expect("recorded");
        let (due, expires, failures, status, name) = schedule_of(&pool, "192.0.2.1").await;
        assert!(near(due, wait), "attempt {attempt}: due in {due} s");
        assert!(expires.is_some_and(|e| near(e, 3_600.0)), "the old expiry stays");
        assert_eq!(
            (failures, status.as_deref(), name.as_deref()),
            (attempt, Some("found"), Some("mta1.mail.example.com"))
        );
    }
    // Capped.
    sqlx::query("UPDATE source_ips SET ptr_failures = 25 WHERE ip = '192.0.2.1'").execute(&pool).await.expect("set");
    record(&pool, std::slice::from_ref(&timed_out), &schedule).await.expect("recorded");
    let (due, ..) = schedule_of(&pool, "192.0.2.1").await;
    assert!(near(due, schedule.backoff_cap.as_secs_f64()), "{due}");

    // An answer again: failures reset; NXDOMAIN replaces the name.
    let gone = Enrichment { ptr: Some(answer(PtrStatus::NxDomain, None, 7_200)), ..found };
    record(&pool, &[gone], &schedule).await.expect("recorded");
    let (due, _, failures, status, name) = schedule_of(&pool, "192.0.2.1").await;
    assert!(near(due, 7_200.0), "{due}");
    assert_eq!((failures, status.as_deref(), name), (0, Some("nxdomain"), None));
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn stale_and_all_make_addresses_due_again(pool: PgPool) {
    sqlx::query(
        "INSERT INTO source_ips (ip, ptr_expires, geo_source, asn_source, geo_looked_up, sender_looked_up, enrich_due) VALUES \
         ('192.0.2.1', now() + interval '1 day', 'db 2026-11-01', 'db 2026-11-01', now(), now(), now() + interval '1 day'), \
         ('192.0.2.2', now() - interval '1 hour', 'db 2026-11-01', 'db 2026-11-01', now(), now(), now() + interval '1 day'), \
         ('192.0.2.3', now() + interval '1 day', 'db 2026-06-01', 'db 2026-06-01', now(), now(), now() + interval '1 day'), \
         ('192.0.2.4', now() + interval '1 day', 'db 2026-11-01', 'db 2026-11-01', now() - interval '40 days', \
             now() - interval '40 days', now() + interval '1 day'), \
         ('192.0.2.5', NULL, 'db 2026-11-01', 'db 2026-11-01', now(), now(), now() + interval '1 day')",
    )
    .execute(&pool)
    .await
    .expect("rows");
    let due = |pool: PgPool| async move {
        sqlx::query_scalar::<_, String>("SELECT host(ip) FROM source_ips WHERE enrich_due <= now() ORDER BY ip")
            .fetch_all(&pool)
            .await
            .expect("due rows")
    };
    let refresh = Duration::from_secs(30 * 86_400);
    let without_dns = Staleness { dns: false, geo_sources: vec!["db 2026-11-01".into()], refresh };
    assert_eq!(mark_stale_due(&pool, &without_dns).await.expect("marked"), 2);
    assert_eq!(due(pool.clone()).await, ["192.0.2.3", "192.0.2.4"], "another database; looked up too long ago");

    let with_dns = Staleness { dns: true, ..without_dns };
    assert_eq!(mark_stale_due(&pool, &with_dns).await.expect("marked"), 2);
    assert_eq!(due(pool.clone()).await, ["192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5"], "PTR expired or never");

    assert_eq!(mark_all_due(&pool).await.expect("marked"), 1);
    assert_eq!(count_due(&pool).await.expect("counted"), 5);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn records_stored_before_the_queue_are_queued_by_the_backfill(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/aggregate/outlook-xsi.xml");
    let result = store
        .ingest(Envelope::new(Origin::File { path: sample.clone() }, Payload::File(sample)), &Limits::default())
        .await
        .expect("stored");
    assert_eq!(result.outcome, Outcome::Stored);
    // As a database from before the queue: records, no source_ips rows.
    sqlx::query("DELETE FROM source_ips").execute(&pool).await.expect("emptied");
    let (_, recorded) = queued_and_recorded(&pool).await;
    assert_eq!(queue_all_sources(&pool).await.expect("queued"), recorded.len() as u64);
    let (queued, recorded) = queued_and_recorded(&pool).await;
    assert_eq!(queued, recorded);
    assert_eq!(queue_all_sources(&pool).await.expect("queued"), 0, "nothing twice");
}
