//! The rollups by what is known of the sources (host, sender, country, ASN, location, and the
//! source with its details) and the old keys equal sums computed here, in Rust, from the
//! records joined with `source_ips` (rows written by the test, with unknown and unenriched
//! sources), with and without filters, before and after compaction, and with rows of both
//! kinds; compaction keeps every column and holds back sums past 64 bits.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use chrono::NaiveDate;
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::testkit::ReportBuilder;
use dmarcpipe_store::compact;
use dmarcpipe_store::rollup::{self, Count, RollupFilter, RollupKey};
use dmarcpipe_store::{Outcome, Store};
use sqlx::{AssertSqlSafe, PgPool};

const NOV_2: u64 = 1_793_577_600; // 2026-11-02T00:00:00Z
const DAY: u64 = 86_400;

const KEYS: [RollupKey; 10] = [
    RollupKey::Result,
    RollupKey::Source,
    RollupKey::Org,
    RollupKey::Domain,
    RollupKey::Day,
    RollupKey::Host,
    RollupKey::Sender,
    RollupKey::Country,
    RollupKey::Asn,
    RollupKey::Location,
];

async fn ingest(store: &Store, report: ReportBuilder) {
    let name = format!("{}.xml", report.file_stem());
    let envelope =
        Envelope::new(Origin::File { path: PathBuf::from(&name) }, Payload::Bytes(report.xml().into_bytes()));
    let result = store.ingest(envelope, &Limits::default()).await.expect("the database takes the input");
    assert_eq!(result.outcome, Outcome::Stored, "{result:?}");
}

/// What enrichment would have found: a provider with two servers at one point, an ESP, a
/// PTR name only, an address looked up with nothing found, one with coordinates cut in half;
/// 192.0.2.7 has no row at all (the rows queued when the records were stored are replaced).
async fn enrich(pool: &PgPool) {
    sqlx::query("DELETE FROM source_ips").execute(pool).await.expect("the queued rows removed");
    sqlx::query(
        "INSERT INTO source_ips (ip, ptr_name, ptr_base_domain, sender_name, sender_kind, country_code, country_name, \
             city, latitude, longitude, asn, as_org) VALUES \
         ('192.0.2.1', 'mail-a.google.com', 'google.com', 'Google Workspace', 'mailbox_provider', 'US', 'United States', \
             NULL, 37.751, -97.822, 15169, 'Google LLC'), \
         ('192.0.2.2', 'mail-b.google.com', 'google.com', 'Google Workspace', 'mailbox_provider', 'US', 'United States', \
             'Mountain View', 37.751, -97.822, 15169, 'Google LLC'), \
         ('192.0.2.3', 'o1.sendgrid.net', 'sendgrid.net', 'SendGrid', 'esp', 'US', 'United States', 'New York', \
             40.7128, -74.006, 11377, 'SendGrid'), \
         ('2001:db8::5', 'host.example.org', 'example.org', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
         ('192.0.2.6', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL), \
         ('192.0.2.8', NULL, NULL, NULL, NULL, 'VN', 'Viet Nam', 'Hanoi', 21.03, NULL, 7552, 'Viettel')",
    )
    .execute(pool)
    .await
    .expect("source_ips rows");
}

async fn first_reports(store: &Store) {
    let example_com = |org: &str, id: &str, begin: u64| ReportBuilder::new(org, id, "example.com", begin);
    ingest(
        store,
        example_com("Reporter A", "a-1", NOV_2)
            .record("192.0.2.1", 100, "none", "pass", "pass")
            .record("192.0.2.3", 20, "reject", "fail", "fail")
            .record("192.0.2.6", 5, "none", "fail", "pass")
            .record("192.0.2.8", 7, "quarantine", "fail", "fail"),
    )
    .await;
    ingest(
        store,
        example_com("Reporter B", "b-1", NOV_2 + DAY)
            .record("192.0.2.2", 50, "none", "pass", "fail")
            .record("2001:db8::5", 3, "none", "fail", "fail")
            .record("192.0.2.7", 9, "none", "pass", "pass")
            .record("192.0.2.1", 11, "reject", "fail", "fail"),
    )
    .await;
    ingest(
        store,
        ReportBuilder::new("Reporter A", "a-2", "example.net", NOV_2 + 2 * DAY)
            .record("192.0.2.3", 30, "none", "pass", "pass")
            .record("not-an-address", 4, "none", "fail", "fail"),
    )
    .await;
}

/// One record with its report and what is known of its source.
#[derive(Debug, sqlx::FromRow)]
struct Fact {
    source: Option<String>,
    messages: i64,
    disposition: Option<String>,
    dkim: Option<String>,
    spf: Option<String>,
    day: NaiveDate,
    domain: String,
    org: String,
    ptr_name: Option<String>,
    host: Option<String>,
    sender: Option<String>,
    kind: Option<String>,
    country: Option<String>,
    country_name: Option<String>,
    city: Option<String>,
    asn: Option<i64>,
    as_org: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

async fn facts(pool: &PgPool) -> Vec<Fact> {
    sqlx::query_as(
        "SELECT host(r.source_ip) AS source, r.message_count AS messages, r.disposition, r.dkim_aligned AS dkim, \
                r.spf_aligned AS spf, (b.date_begin AT TIME ZONE 'UTC')::date AS day, b.policy_domain AS domain, \
                b.org_name AS org, i.ptr_name, i.ptr_base_domain AS host, i.sender_name AS sender, \
                i.sender_kind AS kind, i.country_code AS country, i.country_name, i.city, i.asn, i.as_org, \
                i.latitude, i.longitude \
         FROM aggregate_records r \
         JOIN aggregate_reports b ON b.id = r.report AND b.date_begin = r.date_begin \
         LEFT JOIN source_ips i ON i.ip = r.source_ip",
    )
    .fetch_all(pool)
    .await
    .expect("the records")
}

/// A rollup row as compared: key, details, the nine sums, distinct sources.
type Row = (Option<String>, Vec<Option<String>>, [i128; 9], Option<i64>);

/// The smallest of the values that are there (SQL's min).
fn least(current: &mut Option<String>, value: Option<String>) {
    if let Some(value) = value
        && current.as_ref().is_none_or(|held| value < *held)
    {
        *current = Some(value);
    }
}

/// The rollup by `key` computed from the records.
fn expected(facts: &[Fact], key: RollupKey, filter: &RollupFilter) -> Vec<Row> {
    type Group = (Vec<Option<String>>, [i128; 9], BTreeSet<String>);
    // The value of the key: one part, or two for a location (latitude, longitude).
    type GroupKey = (Option<String>, Option<String>);
    let mut groups: BTreeMap<GroupKey, Group> = BTreeMap::new();
    for fact in facts {
        if filter.domain.as_deref().is_some_and(|domain| domain != fact.domain)
            || filter.since.is_some_and(|since| fact.day < since)
            || filter.until.is_some_and(|until| fact.day >= until)
        {
            continue;
        }
        let unknown = |value: &Option<String>| Some(value.clone().unwrap_or_else(|| "unknown".into()));
        let located = fact.latitude.is_some() && fact.longitude.is_some();
        let pass = fact.dkim.as_deref() == Some("pass") || fact.spf.as_deref() == Some("pass");
        let (group_key, details): (GroupKey, Vec<Option<String>>) = match key {
            RollupKey::Result => {
                let result = if pass {
                    "pass"
                } else if fact.dkim.is_none() && fact.spf.is_none() {
                    "unknown"
                } else {
                    "fail"
                };
                ((Some(result.into()), None), vec![])
            }
            RollupKey::Org => ((Some(fact.org.clone()), None), vec![]),
            RollupKey::Domain => ((Some(fact.domain.clone()), None), vec![]),
            RollupKey::Day => ((Some(fact.day.to_string()), None), vec![]),
            RollupKey::Source => (
                (fact.source.clone(), None),
                vec![fact.ptr_name.clone(), fact.sender.clone(), fact.country.clone(), fact.asn.map(|a| a.to_string())],
            ),
            RollupKey::Host => ((unknown(&fact.host), None), vec![]),
            RollupKey::Sender => ((unknown(&fact.sender), None), vec![fact.kind.clone()]),
            RollupKey::Country => ((unknown(&fact.country), None), vec![fact.country_name.clone()]),
            RollupKey::Asn => ((fact.asn.map(|a| a.to_string()), None), vec![fact.as_org.clone()]),
            RollupKey::Location => {
                if located {
                    let (latitude, longitude) = (fact.latitude.unwrap_or_default(), fact.longitude.unwrap_or_default());
                    (
                        (Some(latitude.to_string()), Some(longitude.to_string())),
                        vec![Some(longitude.to_string()), fact.country.clone(), fact.city.clone()],
                    )
                } else {
                    ((None, None), vec![None, None, None])
                }
            }
        };
        let entry = groups.entry(group_key).or_insert_with(|| (vec![None; details.len()], [0; 9], BTreeSet::new()));
        for (held, value) in entry.0.iter_mut().zip(details) {
            least(held, value);
        }
        let count = i128::from(fact.messages);
        let fail = !pass && (fact.dkim.is_some() || fact.spf.is_some());
        let disposition = fact.disposition.as_deref();
        for (sum, counts) in entry.1.iter_mut().zip([
            true,
            pass,
            fail,
            matches!(disposition, Some("none" | "pass")),
            disposition == Some("quarantine"),
            disposition == Some("reject"),
            fact.dkim.as_deref() == Some("pass"),
            fact.spf.as_deref() == Some("pass"),
        ]) {
            if counts {
                *sum += count;
            }
        }
        entry.1[8] += 1;
        entry.2.extend(fact.source.clone());
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|((key_value, _), (details, sums, sources))| {
            (key_value, details, sums, key.counts_sources().then_some(sources.len() as i64))
        })
        .collect();
    rows.sort();
    rows
}

/// The rollup by `key` as the store answers it, comparable with [`expected`].
async fn answered(pool: &PgPool, key: RollupKey, filter: &RollupFilter) -> Vec<Row> {
    let rows = rollup::query(pool, key, filter).await.expect("the rollup answers");
    let number = |text: Option<String>| text.map(|t| t.parse::<f64>().expect("a number").to_string());
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|row| {
            let mut details = row.details.clone();
            let mut key_value = row.key.clone();
            if key == RollupKey::Location {
                key_value = number(key_value);
                details[0] = number(details[0].take());
            }
            let sums = [
                row.messages,
                row.dmarc_pass,
                row.dmarc_fail,
                row.disposition_none,
                row.disposition_quarantine,
                row.disposition_reject,
                row.dkim_aligned,
                row.spf_aligned,
                row.records,
            ]
            .map(|count: Count| count.0);
            (key_value, details, sums, row.sources.filter(|_| key.counts_sources()))
        })
        .collect();
    rows.sort();
    rows
}

/// The filters every key is checked with. Weeks begin on Monday (2026-11-02, 9, 16): the
/// periods without a domain take their whole weeks from the weekly level and the other days
/// from the rows per day, so they begin and end on every kind of day.
fn filters() -> Vec<RollupFilter> {
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d);
    let period = |since, until| RollupFilter { since, until, ..RollupFilter::default() };
    vec![
        RollupFilter::default(),
        RollupFilter { domain: Some("Example.COM".into()), ..RollupFilter::default() },
        period(day(3), None),
        period(None, day(3)),
        RollupFilter { domain: Some("example.com".into()), since: day(3), until: day(4) },
        // A whole week, and days of the weeks before and after.
        period(day(3), day(17)),
        // Two whole weeks, no other day.
        period(day(2), day(16)),
        // Days of one week only.
        period(day(4), day(6)),
        // From a Monday on; up to a Tuesday.
        period(day(9), None),
        period(None, day(10)),
        RollupFilter { domain: Some("example.com".into()), since: day(3), until: day(17) },
    ]
}

/// Every key under every filter against the records.
async fn assert_rollups_equal_records(pool: &PgPool, when: &str) {
    let facts = facts(pool).await;
    for filter in filters() {
        let lower = RollupFilter { domain: filter.domain.as_ref().map(|d| d.to_lowercase()), ..filter.clone() };
        for key in KEYS {
            assert_eq!(
                answered(pool, key, &filter).await,
                expected(&facts, key, &lower),
                "{when}: by {} with {filter:?}",
                key.name()
            );
        }
    }
}

async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(pool).await.expect("query runs").unwrap_or(0)
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn rollups_by_what_is_known_of_sources_equal_the_records(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    first_reports(&store).await;
    enrich(&pool).await;
    assert_rollups_equal_records(&pool, "appended rows only").await;

    // A few fixed expectations, so that the comparison itself is known to see the joins.
    let by_host = rollup::query(&pool, RollupKey::Host, &RollupFilter::default()).await.expect("by host");
    let google = by_host.iter().find(|row| row.key.as_deref() == Some("google.com")).expect("google.com");
    assert_eq!((google.messages, google.sources), (Count(161), Some(2)));
    let unknown = by_host.iter().find(|row| row.key.as_deref() == Some("unknown")).expect("unknown hosts");
    // 192.0.2.6 (nothing found), .7 (not enriched), .8 (no PTR) and the record without an address.
    assert_eq!((unknown.messages, unknown.sources), (Count(25), Some(3)));
    let by_location = rollup::query(&pool, RollupKey::Location, &RollupFilter::default()).await.expect("by location");
    let point = by_location.iter().find(|row| row.key.as_deref() == Some("37.751")).expect("the Google point");
    assert_eq!(point.details, vec![Some("-97.822".into()), Some("US".into()), Some("Mountain View".into())]);

    let done = compact::compact(&pool).await.expect("compaction runs").expect("not locked");
    assert_eq!(done.held_back, 0);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM ONLY aggregate_rollup_sources").await, 0);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM ONLY aggregate_rollup_daily").await, 0);
    assert_rollups_equal_records(&pool, "compacted").await;

    // New rows beside compacted ones: the same keys again (merged into existing rows later), a
    // new day, and a new address of a known host.
    ingest(
        &store,
        ReportBuilder::new("Reporter B", "b-2", "example.com", NOV_2)
            .record("192.0.2.1", 1000, "none", "pass", "pass")
            .record("192.0.2.9", 2, "reject", "fail", "fail")
            .record("not-an-address", 1, "none", "fail", "fail"),
    )
    .await;
    ingest(
        &store,
        ReportBuilder::new("Reporter C", "c-1", "example.net", NOV_2 + 5 * DAY).record(
            "192.0.2.3",
            8,
            "none",
            "pass",
            "fail",
        ),
    )
    .await;
    sqlx::query(
        "UPDATE source_ips SET ptr_name = 'mail-c.google.com', ptr_base_domain = 'google.com', \
             country_code = 'IE', country_name = 'Ireland' WHERE ip = '192.0.2.9'",
    )
    .execute(&pool)
    .await
    .expect("a new source_ips row");
    // The next weeks: a known source on Tuesday the 10th, a new one and one without an
    // address on Monday the 16th.
    ingest(
        &store,
        ReportBuilder::new("Reporter C", "c-2", "example.net", NOV_2 + 8 * DAY)
            .record("192.0.2.3", 3, "none", "pass", "pass")
            .record("192.0.2.9", 5, "quarantine", "fail", "fail"),
    )
    .await;
    ingest(
        &store,
        ReportBuilder::new("Reporter A", "a-3", "example.com", NOV_2 + 14 * DAY)
            .record("198.51.100.7", 11, "none", "fail", "pass")
            .record("not-an-address", 2, "none", "pass", "fail"),
    )
    .await;
    assert_rollups_equal_records(&pool, "compacted and appended rows").await;
    compact::compact(&pool).await.expect("compaction runs").expect("not locked");
    assert_rollups_equal_records(&pool, "compacted twice").await;
    // A row per week and source, the sums of the rows per day of its week.
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM (SELECT date_trunc('week', day)::date, source_ip, sum(messages), sum(dmarc_fail), \
                 sum(records) FROM aggregate_rollup_sources_compacted GROUP BY 1, 2 \
             EXCEPT SELECT week, source_ip, messages, dmarc_fail, records FROM aggregate_rollup_source_weeks) d"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM aggregate_rollup_source_weeks WHERE source_ip IS NULL").await,
        2,
        "records without an address, in two weeks"
    );
    // One row per key in the compacted levels.
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM aggregate_rollup_sources_compacted WHERE source_ip = '192.0.2.1'").await,
        2
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM aggregate_rollup_source_totals WHERE source_ip = '192.0.2.1'").await,
        1
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM aggregate_rollup_source_totals WHERE source_ip IS NULL").await,
        2,
        "records without an address: one row per domain"
    );
    // Per source over every domain: one row each, the sums of the totals per domain.
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM aggregate_rollup_source_ip_totals WHERE source_ip IS NULL").await,
        1
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT count(*) FROM (SELECT source_ip, sum(messages), sum(records), min(first_day), max(last_day) \
                 FROM aggregate_rollup_source_totals GROUP BY 1 \
             EXCEPT SELECT source_ip, messages, records, first_day, last_day FROM aggregate_rollup_source_ip_totals) d"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM aggregate_rollup_source_ip_totals").await,
        scalar(&pool, "SELECT count(DISTINCT coalesce(host(source_ip), '')) FROM aggregate_rollup_source_totals").await
    );
}

/// Sums of sources in the source rollups, each level apart, as (level, source, messages).
async fn levels(pool: &PgPool) -> Vec<(String, Option<String>, String)> {
    let mut rows: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT 'appended', host(source_ip), sum(messages)::text FROM ONLY aggregate_rollup_sources GROUP BY 2 \
         UNION ALL SELECT 'compacted', host(source_ip), sum(messages)::text \
             FROM aggregate_rollup_sources_compacted GROUP BY 2 \
         UNION ALL SELECT 'totals', host(source_ip), sum(messages)::text FROM aggregate_rollup_source_totals GROUP BY 2 \
         UNION ALL SELECT 'ip totals', host(source_ip), messages::text FROM aggregate_rollup_source_ip_totals",
    )
    .fetch_all(pool)
    .await
    .expect("the levels");
    rows.sort();
    rows
}

/// The upgrade that adds the totals per source over every domain fills them from the totals
/// per domain; a source whose sums over the domains pass 64 bits goes back to the appended
/// rows, and the rollups stay exact.
#[sqlx::test(migrations = false)]
async fn source_totals_over_every_domain_are_filled_on_upgrade(pool: PgPool) {
    dmarcpipe_store::MIGRATOR.run_to(20261202020001, &pool).await.expect("the schema before");
    // As compaction leaves them: 192.0.2.1 in two domains; 192.0.2.2 in two domains, each
    // total fitting in 64 bits, not their sum; records without an address.
    sqlx::query(
        "INSERT INTO aggregate_rollup_sources_compacted (day, policy_domain, source_ip, messages, dmarc_pass, \
             dmarc_fail, disposition_none, disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, \
             records) VALUES \
         ('2026-11-02', 'example.com', '192.0.2.1', 10, 10, 0, 10, 0, 0, 10, 0, 2), \
         ('2026-11-03', 'example.com', '192.0.2.1', 5, 0, 5, 5, 0, 0, 0, 0, 1), \
         ('2026-11-03', 'example.net', '192.0.2.1', 7, 7, 0, 7, 0, 0, 0, 7, 1), \
         ('2026-11-02', 'example.com', '192.0.2.2', 6000000000000000000, 0, 0, 0, 0, 0, 0, 0, 1), \
         ('2026-11-04', 'example.net', '192.0.2.2', 5000000000000000000, 0, 0, 0, 0, 0, 0, 0, 1), \
         ('2026-11-04', 'example.net', NULL, 3, 0, 3, 3, 0, 0, 0, 0, 1)",
    )
    .execute(&pool)
    .await
    .expect("compacted rows");
    sqlx::query(
        "INSERT INTO aggregate_rollup_source_totals (policy_domain, source_ip, first_day, last_day, messages, \
             dmarc_pass, dmarc_fail, disposition_none, disposition_quarantine, disposition_reject, dkim_aligned, \
             spf_aligned, records) \
         SELECT policy_domain, source_ip, min(day), max(day), sum(messages), sum(dmarc_pass), sum(dmarc_fail), \
             sum(disposition_none), sum(disposition_quarantine), sum(disposition_reject), sum(dkim_aligned), \
             sum(spf_aligned), sum(records) \
         FROM aggregate_rollup_sources_compacted GROUP BY 1, 2",
    )
    .execute(&pool)
    .await
    .expect("totals");
    dmarcpipe_store::MIGRATOR.run(&pool).await.expect("the upgrade");

    let to_row = |level: &str, source: Option<&str>, messages: &str| {
        (level.to_owned(), source.map(Into::into), messages.to_owned())
    };
    let mut expected = vec![
        // Back to the rows appended, per day.
        to_row("appended", Some("192.0.2.2"), "11000000000000000000"),
        to_row("compacted", Some("192.0.2.1"), "22"),
        to_row("compacted", None, "3"),
        to_row("totals", Some("192.0.2.1"), "22"),
        to_row("totals", None, "3"),
        to_row("ip totals", Some("192.0.2.1"), "22"),
        to_row("ip totals", None, "3"),
    ];
    expected.sort();
    assert_eq!(levels(&pool).await, expected);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM ONLY aggregate_rollup_sources").await, 2);

    let by_source = rollup::query(&pool, RollupKey::Source, &RollupFilter::default()).await.expect("by source");
    let sums: Vec<(Option<String>, Count, Count)> =
        by_source.iter().map(|row| (row.key.clone(), row.messages, row.records)).collect();
    assert_eq!(
        sums,
        [
            (Some("192.0.2.2".to_owned()), Count(11_000_000_000_000_000_000), Count(2)),
            (Some("192.0.2.1".to_owned()), Count(22), Count(4)),
            (None, Count(3), Count(1)),
        ]
    );
    // Compaction keeps the source that does not fit appended.
    let done = compact::compact(&pool).await.expect("compaction runs").expect("not locked");
    assert_eq!(done, compact::Compacted { rows: 0, held_back: 2 });
    let again = rollup::query(&pool, RollupKey::Source, &RollupFilter::default()).await.expect("by source");
    assert_eq!(again, by_source);
}

/// The upgrade that adds the weekly level fills it from the compacted rows per day (not from
/// the rows appended since, which the next compaction takes), and the rollups over a period
/// read it at once.
#[sqlx::test(migrations = false)]
async fn source_weeks_are_filled_on_upgrade(pool: PgPool) {
    dmarcpipe_store::MIGRATOR.run_to(20261202140001, &pool).await.expect("the schema before");
    let columns = "day, policy_domain, source_ip, messages, dmarc_pass, dmarc_fail, disposition_none, \
                   disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records";
    // Sunday the 1st, Monday the 2nd and Tuesday the 3rd; Monday the 9th; Tuesday the 17th.
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO aggregate_rollup_sources_compacted ({columns}) VALUES \
         ('2026-11-01', 'example.com', '192.0.2.1', 1, 1, 0, 1, 0, 0, 1, 1, 1), \
         ('2026-11-02', 'example.com', '192.0.2.1', 10, 10, 0, 10, 0, 0, 10, 0, 2), \
         ('2026-11-03', 'example.net', '192.0.2.1', 7, 7, 0, 7, 0, 0, 0, 7, 1), \
         ('2026-11-09', 'example.com', '192.0.2.1', 100, 0, 100, 0, 0, 100, 0, 0, 1), \
         ('2026-11-09', 'example.net', NULL, 3, 0, 3, 3, 0, 0, 0, 0, 1), \
         ('2026-11-17', 'example.com', '2001:db8::1', 20, 20, 0, 20, 0, 0, 20, 20, 1)"
    )))
    .execute(&pool)
    .await
    .expect("compacted rows");
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO aggregate_rollup_sources ({columns}) VALUES \
         ('2026-11-10', 'example.com', '192.0.2.1', 1000, 0, 1000, 1000, 0, 0, 0, 0, 1)"
    )))
    .execute(&pool)
    .await
    .expect("an appended row");
    dmarcpipe_store::MIGRATOR.run(&pool).await.expect("the upgrade");

    let weeks: Vec<(NaiveDate, Option<String>, i64, i64)> = sqlx::query_as(
        "SELECT week, host(source_ip), messages, records FROM aggregate_rollup_source_weeks ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .expect("the weekly level");
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).expect("a day");
    let ip = |text: &str| Some(text.to_owned());
    assert_eq!(
        weeks,
        [
            (NaiveDate::from_ymd_opt(2026, 10, 26).expect("a day"), ip("192.0.2.1"), 1, 1),
            (day(2), ip("192.0.2.1"), 17, 3),
            (day(9), ip("192.0.2.1"), 100, 1),
            (day(9), None, 3, 1),
            (day(16), ip("2001:db8::1"), 20, 1),
        ]
    );
    // Monday the 2nd to Monday the 16th: two whole weeks, and the appended row.
    let filter = RollupFilter { since: Some(day(2)), until: Some(day(16)), ..RollupFilter::default() };
    let rows = rollup::query(&pool, RollupKey::Source, &filter).await.expect("by source");
    let sums: Vec<(Option<&str>, Count, Count)> =
        rows.iter().map(|row| (row.key.as_deref(), row.messages, row.dmarc_fail)).collect();
    assert_eq!(sums, [(Some("192.0.2.1"), Count(1117), Count(1100)), (None, Count(3), Count(3))]);
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn the_source_views_equal_the_records(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    first_reports(&store).await;
    enrich(&pool).await;
    compact::compact(&pool).await.expect("compaction runs");
    ingest(
        &store,
        ReportBuilder::new("Reporter B", "b-3", "example.net", NOV_2 + 9 * DAY).record(
            "192.0.2.1",
            4,
            "none",
            "fail",
            "fail",
        ),
    )
    .await;
    // dmarc_sources against the records joined with their sources.
    let sql = "SELECT host(source_ip), sender, country_code, asn, policy_domains::text, messages::bigint, \
                      dmarc_fail::bigint, records::bigint, first_seen, last_seen FROM dmarc_sources";
    let direct = "SELECT host(source_ip), min(sender), min(country_code), min(asn), \
                         array_agg(DISTINCT policy_domain ORDER BY policy_domain)::text, sum(message_count)::bigint, \
                         coalesce(sum(message_count) FILTER (WHERE dmarc_result = 'fail'), 0)::bigint, count(*), \
                         min((date_begin AT TIME ZONE 'UTC')::date), max((date_begin AT TIME ZONE 'UTC')::date) \
                  FROM dmarc_records_sources GROUP BY source_ip";
    type SourceRow =
        (Option<String>, Option<String>, Option<String>, Option<i64>, String, i64, i64, i64, NaiveDate, NaiveDate);
    let mut view: Vec<SourceRow> = sqlx::query_as(sql).fetch_all(&pool).await.expect("dmarc_sources");
    let mut records: Vec<SourceRow> = sqlx::query_as(direct).fetch_all(&pool).await.expect("dmarc_records_sources");
    view.sort();
    records.sort();
    assert_eq!(view, records);
    let google = view.iter().find(|row| row.0.as_deref() == Some("192.0.2.1")).expect("192.0.2.1");
    assert_eq!(
        (google.4.as_str(), google.5, google.8.to_string(), google.9.to_string()),
        ("{example.com,example.net}", 115, "2026-11-02".into(), "2026-11-11".into())
    );
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM dmarc_records_sources").await,
        scalar(&pool, "SELECT count(*) FROM dmarc_records").await
    );
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn compaction_sums_every_column_and_holds_back_sums_past_64_bits(pool: PgPool) {
    // A column added to the append-only table is summed too (it reaches the compacted child).
    sqlx::query("ALTER TABLE aggregate_rollup_sources ADD COLUMN extra bigint NOT NULL DEFAULT 0")
        .execute(&pool)
        .await
        .expect("a new column");
    sqlx::query(
        "INSERT INTO aggregate_rollup_sources (day, policy_domain, source_ip, messages, dmarc_pass, dmarc_fail, \
             disposition_none, disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records, extra) \
         SELECT '2026-11-02', 'example.com', '192.0.2.1', 10, 10, 0, 10, 0, 0, 10, 10, 1, n FROM generate_series(1, 4) n",
    )
    .execute(&pool)
    .await
    .expect("appended rows");
    // The totals of 192.0.2.2 are 5 short of the largest bigint (in both levels of totals, as
    // compaction would have left them).
    for level in
        ["aggregate_rollup_source_totals VALUES ('example.com', ", "aggregate_rollup_source_ip_totals VALUES ("]
    {
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO {level}'192.0.2.2', '2026-11-01', '2026-11-01', 9223372036854775802, 0, 0, 0, 0, 0, 0, 0, 1)"
        )))
        .execute(&pool)
        .await
        .expect("a large total");
    }
    sqlx::query(
        "INSERT INTO aggregate_rollup_sources (day, policy_domain, source_ip, messages, dmarc_pass, dmarc_fail, \
             disposition_none, disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records) \
         VALUES ('2026-11-02', 'example.com', '192.0.2.2', 7, 0, 7, 7, 0, 0, 0, 0, 1)",
    )
    .execute(&pool)
    .await
    .expect("a row that overflows the total");
    let done = compact::compact(&pool).await.expect("compaction runs").expect("not locked");
    assert_eq!(done, compact::Compacted { rows: 4, held_back: 1 });
    assert_eq!(scalar(&pool, "SELECT sum(extra)::bigint FROM aggregate_rollup_sources_compacted").await, 10);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM aggregate_rollup_sources_compacted").await, 1);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM ONLY aggregate_rollup_sources WHERE source_ip = '192.0.2.2'").await,
        1
    );
    // Held back from every level, the weekly one too (where its sum would have fit).
    assert_eq!(scalar(&pool, "SELECT count(*) FROM aggregate_rollup_source_weeks").await, 1);
    assert_eq!(scalar(&pool, "SELECT messages FROM aggregate_rollup_source_weeks").await, 40);
    let november = RollupFilter { since: NaiveDate::from_ymd_opt(2026, 11, 1), ..RollupFilter::default() };
    let rows = rollup::query(&pool, RollupKey::Source, &november).await.expect("by source over weeks");
    let sums: Vec<(Option<&str>, Count)> = rows.iter().map(|row| (row.key.as_deref(), row.messages)).collect();
    // The days of the period: the large total lies before them.
    assert_eq!(sums, [(Some("192.0.2.1"), Count(40)), (Some("192.0.2.2"), Count(7))]);
    // The rollup is still exact, beyond 64 bits.
    let rows = rollup::query(&pool, RollupKey::Source, &RollupFilter::default()).await.expect("by source");
    assert_eq!(rows[0].key.as_deref(), Some("192.0.2.2"));
    assert_eq!(rows[0].messages, Count(9_223_372_036_854_775_802 + 7));
    // A second compaction leaves it where it is, and a concurrent one skips its turn.
    let again = compact::compact(&pool).await.expect("compaction runs").expect("not locked");
    assert_eq!(again, compact::Compacted { rows: 0, held_back: 1 });
    let mut holder = pool.begin().await.expect("a transaction");
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('dmarcpipe_compact_rollups'))")
        .execute(&mut *holder)
        .await
        .expect("the lock");
    assert_eq!(compact::compact(&pool).await.expect("compaction runs"), None);
}

/// The rollups of the sources add up in 64 bits first and, when a sum does not fit, again as
/// exact numbers: the figures past 64 bits are exact with and without filters, by every key of
/// the sources (appended rows, which no compaction has merged).
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn sums_past_64_bits_are_exact_by_every_key_of_the_sources(pool: PgPool) {
    sqlx::query(
        "INSERT INTO aggregate_rollup_sources (day, policy_domain, source_ip, messages, dmarc_pass, dmarc_fail, \
             disposition_none, disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records) \
         VALUES ('2026-11-02', 'example.com', '192.0.2.9', 9223372036854775800, 0, 9223372036854775800, 0, 0, 0, 0, 0, 1), \
                ('2026-11-03', 'example.com', '192.0.2.9', 9, 9, 0, 9, 0, 0, 9, 0, 1), \
                ('2026-11-03', 'example.com', '192.0.2.10', 4, 4, 0, 4, 0, 0, 4, 4, 1)",
    )
    .execute(&pool)
    .await
    .expect("rows past 64 bits");
    let past = Count(9_223_372_036_854_775_809);
    let filters = [
        RollupFilter::default(),
        RollupFilter { since: NaiveDate::from_ymd_opt(2026, 11, 1), ..RollupFilter::default() },
        RollupFilter { domain: Some("example.com".into()), ..RollupFilter::default() },
    ];
    for filter in &filters {
        for key in [RollupKey::Source, RollupKey::Host, RollupKey::Sender, RollupKey::Country, RollupKey::Location] {
            let rows = rollup::query(&pool, key, filter).await.expect("the rollup answers");
            let total: i128 = rows.iter().map(|row| row.messages.0).sum();
            assert_eq!(total, past.0 + 4, "--by {} with {filter:?}", key.name());
            assert_eq!(rows[0].dmarc_fail, Count(9_223_372_036_854_775_800), "--by {} with {filter:?}", key.name());
        }
        let by_source = rollup::query(&pool, RollupKey::Source, filter).await.expect("by source");
        assert_eq!(
            (by_source[0].key.as_deref(), by_source[0].messages, by_source[0].dkim_aligned),
            (Some("192.0.2.9"), past, Count(9)),
            "with {filter:?}"
        );
    }
    // The visual report too (over days given: the daily rollup, which it asks for the days with
    // reports, has no rows here): its classes and senders add up to every message.
    let november = RollupFilter {
        since: NaiveDate::from_ymd_opt(2026, 11, 1),
        until: NaiveDate::from_ymd_opt(2026, 12, 1),
        ..RollupFilter::default()
    };
    let data = dmarcpipe_store::report::gather(&pool, &november).await.expect("the report's figures");
    assert_eq!(data.classes.total(), past.0 + 4);
    assert_eq!(data.senders.iter().map(|group| group.messages).sum::<i128>(), past.0 + 4);
}

/// By source, the most messages first, and sources of as many messages in the order of their
/// addresses (numerically: 10.0.0.9 before 10.0.0.10, IPv4 before IPv6), the records without
/// an address last; each row with what is known of its source.
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn sources_of_as_many_messages_come_in_address_order(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let report = ReportBuilder::new("order.example", "order-1", "example.com", NOV_2)
        .record("2001:db8::1", 5, "none", "pass", "pass")
        .record("10.0.0.10", 5, "none", "pass", "pass")
        .record("10.0.0.9", 5, "none", "pass", "fail")
        .record("192.0.2.1", 7, "none", "fail", "fail")
        .record("not an address", 5, "none", "pass", "pass");
    ingest(&store, report).await;
    enrich(&pool).await;
    let rows = rollup::query(&pool, RollupKey::Source, &RollupFilter::default()).await.expect("rollup by source");
    let keys: Vec<Option<&str>> = rows.iter().map(|row| row.key.as_deref()).collect();
    assert_eq!(keys, [Some("192.0.2.1"), Some("10.0.0.9"), Some("10.0.0.10"), Some("2001:db8::1"), None]);
    assert_eq!(rows[0].messages, Count(7));
    assert_eq!(rows[0].dmarc_fail, Count(7));
    assert_eq!(
        rows[0].details,
        [
            Some("mail-a.google.com".to_owned()),
            Some("Google Workspace".to_owned()),
            Some("US".to_owned()),
            Some("15169".to_owned())
        ]
    );
    assert_eq!(rows[1].details, [None, None, None, None]);
    assert_eq!(rows[1].spf_aligned, Count(0));
    assert_eq!(rows.iter().map(|row| row.sources).collect::<Vec<_>>(), [Some(1), Some(1), Some(1), Some(1), Some(0)]);
}
