//! Traffic classes: each rule puts a record's messages in the class it says (compliant,
//! forwarded by override reason, by ARC override, by unaligned DKIM pass and by a known
//! forwarder; misconfigured from a known service and from a source that passes at other times
//! for the same domain; unknown otherwise, also for a source that passes only for another
//! domain), every record is in exactly one class, and `report --by class` (from the rollups)
//! equals the sums of the analyst view `dmarc_records_classified` (from the records), with and
//! without filters, before and after compaction.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_render::report::data::{GroupRow, ReportData};
use dmarcpipe_store::compact;
use dmarcpipe_store::report::{self, ClassRow};
use dmarcpipe_store::rollup::{self, RollupFilter, RollupKey};
use dmarcpipe_store::{Outcome, Store};
use sqlx::PgPool;

const NOV_2: u64 = 1_793_577_600; // 2026-11-02T00:00:00Z
const DAY: u64 = 86_400;

/// One record: source, count, aligned DKIM and SPF, override reasons (type, comment), and the
/// DKIM auth results (domain, result).
struct Spec {
    ip: &'static str,
    count: u64,
    dkim: &'static str,
    spf: &'static str,
    reasons: &'static [(&'static str, &'static str)],
    dkim_auth: &'static [(&'static str, &'static str)],
}

fn xml(org: &str, id: &str, domain: &str, begin: u64, records: &[Spec]) -> String {
    let mut xml = format!(
        "<?xml version=\"1.0\"?><feedback><report_metadata><org_name>{org}</org_name><email>d@{org}.example</email>\
         <report_id>{id}</report_id><date_range><begin>{begin}</begin><end>{end}</end></date_range></report_metadata>\
         <policy_published><domain>{domain}</domain><p>none</p></policy_published>",
        end = begin + DAY - 1
    );
    for record in records {
        let reasons: String = record
            .reasons
            .iter()
            .map(|(kind, comment)| format!("<reason><type>{kind}</type><comment>{comment}</comment></reason>"))
            .collect();
        let dkim: String = record
            .dkim_auth
            .iter()
            .map(|(signer, result)| format!("<dkim><domain>{signer}</domain><result>{result}</result></dkim>"))
            .collect();
        xml.push_str(&format!(
            "<record><row><source_ip>{ip}</source_ip><count>{count}</count><policy_evaluated>\
             <disposition>none</disposition><dkim>{d}</dkim><spf>{s}</spf>{reasons}</policy_evaluated></row>\
             <identifiers><header_from>{domain}</header_from></identifiers><auth_results>{dkim}\
             <spf><domain>{domain}</domain><result>{s}</result></spf></auth_results></record>",
            ip = record.ip,
            count = record.count,
            d = record.dkim,
            s = record.spf,
        ));
    }
    xml.push_str("</feedback>");
    xml
}

async fn ingest(store: &Store, name: &str, xml: String) {
    let envelope = Envelope::new(Origin::File { path: PathBuf::from(name) }, Payload::Bytes(xml.into_bytes()));
    let result = store.ingest(envelope, &Limits::default()).await.expect("the database takes the input");
    assert_eq!(result.outcome, Outcome::Stored, "{result:?}");
}

const fn spec(ip: &'static str, count: u64, dkim: &'static str, spf: &'static str) -> Spec {
    Spec { ip, count, dkim, spf, reasons: &[], dkim_auth: &[] }
}

/// The records and the class each must be in (by its count, unique per record).
async fn load(store: &Store, pool: &PgPool) -> BTreeMap<i64, &'static str> {
    sqlx::query(
        "INSERT INTO source_ips (ip, sender_name, sender_kind) VALUES \
         ('192.0.2.14', 'Forward Email', 'forwarder'), ('192.0.2.15', 'SendGrid', 'esp'), \
         ('192.0.2.17', 'Gmail', 'mailbox_provider'), ('192.0.2.18', NULL, NULL)",
    )
    .execute(pool)
    .await
    .expect("source_ips rows");
    let records = [
        (spec("192.0.2.10", 10, "pass", "fail"), "compliant"),
        (Spec { reasons: &[("forwarded", "")], ..spec("192.0.2.11", 11, "fail", "fail") }, "forwarded"),
        (Spec { reasons: &[("local_policy", "arc=pass as=1")], ..spec("192.0.2.12", 12, "fail", "fail") }, "forwarded"),
        (Spec { dkim_auth: &[("esp.example", "pass")], ..spec("192.0.2.13", 13, "fail", "fail") }, "forwarded"),
        (spec("192.0.2.14", 14, "fail", "fail"), "forwarded"),
        (spec("192.0.2.15", 15, "fail", "fail"), "misconfigured"),
        // Passed for example.com in the first record: a service of the owner's, not aligned here.
        (spec("192.0.2.10", 16, "fail", "fail"), "misconfigured"),
        (spec("192.0.2.16", 17, "fail", "fail"), "unknown"),
        // A reason that is not forwarding, and a DKIM result that fails, change nothing.
        (
            Spec {
                reasons: &[("sampled_out", ""), ("local_policy", "no arc")],
                dkim_auth: &[("example.com", "fail")],
                ..spec("192.0.2.16", 18, "fail", "fail")
            },
            "unknown",
        ),
        (spec("192.0.2.17", 20, "fail", "pass"), "compliant"),
        (spec("192.0.2.17", 21, "fail", "fail"), "forwarded"),
        (spec("192.0.2.18", 22, "fail", "fail"), "unknown"),
        // The second DKIM result passes (stored apart from the first).
        (
            Spec {
                dkim_auth: &[("example.com", "fail"), ("list.example", "pass")],
                ..spec("192.0.2.18", 23, "fail", "fail")
            },
            "forwarded",
        ),
        (spec("not-an-address", 24, "fail", "fail"), "unknown"),
    ];
    let (first, second): (Vec<_>, Vec<_>) = records.into_iter().enumerate().partition(|(index, _)| index % 2 == 0);
    let mut expected = BTreeMap::new();
    for (name, id, begin, part) in [("a.xml", "a-1", NOV_2, first), ("b.xml", "b-1", NOV_2 + DAY, second)] {
        let specs: Vec<Spec> = part
            .into_iter()
            .map(|(_, (spec, class))| {
                expected.insert(spec.count as i64, class);
                spec
            })
            .collect();
        ingest(store, name, xml("Reporter", id, "example.com", begin, &specs)).await;
    }
    // 192.0.2.16 passes for another domain only: still unknown for example.com.
    ingest(store, "c.xml", xml("Reporter", "c-1", "example.net", NOV_2, &[spec("192.0.2.16", 19, "pass", "pass")]))
        .await;
    expected.insert(19, "compliant");
    expected
}

async fn view_sums(pool: &PgPool, filter: &RollupFilter) -> BTreeMap<String, (i64, i64)> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT class, sum(message_count)::bigint, count(DISTINCT source_ip) FROM dmarc_records_classified \
         WHERE ($1::text IS NULL OR policy_domain = $1) \
           AND ($2::date IS NULL OR date_begin >= $2::date::timestamp AT TIME ZONE 'UTC') \
           AND ($3::date IS NULL OR date_begin < $3::date::timestamp AT TIME ZONE 'UTC') \
         GROUP BY class",
    )
    .bind(&filter.domain)
    .bind(filter.since)
    .bind(filter.until)
    .fetch_all(pool)
    .await
    .expect("the view");
    rows.into_iter().map(|(class, messages, sources)| (class, (messages, sources))).collect()
}

fn rollup_sums(rows: &[ClassRow]) -> BTreeMap<String, (i64, i64)> {
    rows.iter()
        .filter(|row| row.messages.0 > 0)
        .map(|row| (row.class.clone(), (i64::try_from(row.messages.0).expect("small"), row.sources)))
        .collect()
}

fn filters() -> Vec<RollupFilter> {
    let day = |d| NaiveDate::from_ymd_opt(2026, 11, d);
    vec![
        RollupFilter::default(),
        RollupFilter { domain: Some("example.com".to_owned()), ..RollupFilter::default() },
        RollupFilter { since: day(3), ..RollupFilter::default() },
        RollupFilter { domain: Some("example.net".to_owned()), since: day(1), until: day(3) },
    ]
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn every_rule_puts_a_record_in_its_class(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let expected = load(&store, &pool).await;
    let actual: Vec<(i64, String)> =
        sqlx::query_as("SELECT message_count, class FROM dmarc_records_classified ORDER BY message_count")
            .fetch_all(&pool)
            .await
            .expect("the view");
    assert_eq!(actual.len(), expected.len(), "one row per record: {actual:?}");
    for (count, class) in actual {
        assert_eq!(Some(class.as_str()), expected.get(&count).copied(), "the record of {count} messages");
    }
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn class_rollups_equal_the_view(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    let expected = load(&store, &pool).await;
    let total: i64 = expected.keys().sum();
    for compacted in [false, true] {
        if compacted {
            compact::compact(&pool).await.expect("compaction").expect("the lock");
        }
        for filter in filters() {
            let rows = report::classes(&pool, &filter).await.expect("the class rollup");
            let classes: Vec<&str> = rows.iter().map(|row| row.class.as_str()).collect();
            assert_eq!(classes, ["compliant", "forwarded", "misconfigured", "unknown"], "every class, in order");
            assert_eq!(rollup_sums(&rows), view_sums(&pool, &filter).await, "{filter:?}, compacted: {compacted}");
        }
        let all = report::classes(&pool, &RollupFilter::default()).await.expect("the class rollup");
        assert_eq!(all.iter().map(|row| row.messages.0).sum::<i128>(), i128::from(total), "exactly one class each");
    }
    // Enrichment done later changes the class: 192.0.2.16 becomes a known service.
    sqlx::query(
        "INSERT INTO source_ips (ip, sender_name, sender_kind) VALUES ('192.0.2.16', 'Mailgun', 'esp') \
         ON CONFLICT (ip) DO UPDATE SET sender_name = excluded.sender_name, sender_kind = excluded.sender_kind",
    )
    .execute(&pool)
    .await
    .expect("the sender found");
    let rows = report::classes(&pool, &RollupFilter::default()).await.expect("the class rollup");
    assert_eq!(rollup_sums(&rows), view_sums(&pool, &RollupFilter::default()).await);
    let misconfigured = rows.iter().find(|row| row.class == "misconfigured").map(|row| row.messages.0);
    assert_eq!(misconfigured, Some(15 + 16 + 17 + 18));
}

/// The visual report's figures: the classes over the period and per day equal the view, the
/// previous period is the same length before, and the fix lists name the right sources.
#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn visual_report_figures_equal_the_rollups(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    load(&store, &pool).await;
    let filter = RollupFilter::default();
    let data = report::gather(&pool, &filter).await.expect("the report's figures");
    let view = view_sums(&pool, &filter).await;
    let of = |class: &str| i128::from(view.get(class).map_or(0, |sums| sums.0));
    assert_eq!(
        data.classes.values(),
        [of("compliant"), of("forwarded"), of("misconfigured"), of("unknown")],
        "classes over the period"
    );
    let daily: i128 = data.days.iter().map(|day| day.classes.total()).sum();
    assert_eq!(daily, data.classes.total(), "the days add up to the period");
    assert_eq!(data.days.iter().map(|day| day.day.as_str()).collect::<Vec<_>>(), ["2026-11-02", "2026-11-03"]);
    assert_eq!(data.current.messages, data.classes.total());
    assert_eq!(data.first_day.as_deref(), Some("2026-11-02"));
    assert_eq!(data.previous_first_day.as_deref(), Some("2026-10-31"));
    assert_eq!(data.previous.messages, 0);
    let sendgrid = data.services_to_align.iter().find(|fix| fix.service == "SendGrid").expect("SendGrid to align");
    assert_eq!((sendgrid.domain.as_str(), sendgrid.failing), ("example.com", 15));
    let unknown: Vec<(Option<&str>, i128)> =
        data.unknown_sources.iter().map(|source| (source.ip.as_deref(), source.messages)).collect();
    assert_eq!(unknown, [(Some("192.0.2.16"), 35), (None, 24), (Some("192.0.2.18"), 22)]);
    assert_eq!(data.misconfigured_by_domain, [("example.com".to_owned(), 31)]);
    let top = &data.sources[0];
    assert_eq!((top.ip.as_deref(), top.messages), (Some("192.0.2.16"), 17 + 18 + 19));
    assert_eq!((top.classes.compliant, top.classes.unknown, top.classes.main_class()), (19, 35, "unknown"));
    let gmail = data.sources.iter().find(|source| source.ip.as_deref() == Some("192.0.2.17")).expect("listed");
    assert_eq!((gmail.sender.as_deref(), gmail.sender_kind.as_deref()), (Some("Gmail"), Some("mailbox_provider")));
    assert_eq!((gmail.classes.compliant, gmail.classes.forwarded, gmail.classes.main_class()), (20, 21, "forwarded"));
    assert_days_and_previous_equal_the_view(&pool, &data).await;
    assert_groups_equal_the_rollups(&pool, &data, &filter).await;
    let one_domain = RollupFilter { domain: Some("example.com".into()), ..RollupFilter::default() };
    let of_domain = report::gather(&pool, &one_domain).await.expect("the report of a domain");
    assert_groups_equal_the_rollups(&pool, &of_domain, &one_domain).await;
    // Compacted, the same figures (the failing rows of each day then come from the index).
    compact::compact(&pool).await.expect("compaction").expect("the lock");
    let compacted = report::gather(&pool, &filter).await.expect("the report's figures");
    assert_eq!(compacted.days, data.days);
    assert_eq!(compacted.classes, data.classes);
    assert_eq!(compacted.sources, data.sources);
    assert_days_and_previous_equal_the_view(&pool, &compacted).await;
}

/// The report's hosts, senders and countries are the rollups by those keys.
async fn assert_groups_equal_the_rollups(pool: &PgPool, data: &ReportData, filter: &RollupFilter) {
    let shown =
        [(RollupKey::Host, &data.hosts), (RollupKey::Sender, &data.senders), (RollupKey::Country, &data.countries)];
    for (key, groups) in shown {
        let rows = rollup::query(pool, key, filter).await.expect("the rollup");
        let expected: Vec<GroupRow> = rows
            .into_iter()
            .take(report::TOP as usize)
            .map(|row| GroupRow {
                key: row.key.filter(|key| key != "unknown"),
                detail: row.details.first().cloned().flatten(),
                messages: row.messages.0,
                dmarc_pass: row.dmarc_pass.0,
                dkim_aligned: row.dkim_aligned.0,
                spf_aligned: row.spf_aligned.0,
                count: row.sources.unwrap_or(0),
                failing: row.messages.0 - row.dmarc_pass.0,
            })
            .collect();
        assert!(!groups.is_empty(), "--by {} with {filter:?} has groups", key.name());
        assert_eq!(groups, &expected, "--by {} with {filter:?}", key.name());
    }
}

/// Each day's classes equal the view over that day, and so do those of the previous period of
/// a report of one day.
async fn assert_days_and_previous_equal_the_view(pool: &PgPool, data: &ReportData) {
    let classes_of = |view: &BTreeMap<String, (i64, i64)>| {
        ["compliant", "forwarded", "misconfigured", "unknown"]
            .map(|class| i128::from(view.get(class).map_or(0, |s| s.0)))
    };
    for day in &data.days {
        let first: NaiveDate = day.day.parse().expect("a day");
        let one_day = RollupFilter { domain: None, since: Some(first), until: first.succ_opt() };
        assert_eq!(day.classes.values(), classes_of(&view_sums(pool, &one_day).await), "{}", day.day);
        let next_day =
            RollupFilter { domain: None, since: first.succ_opt(), until: first.succ_opt().and_then(|d| d.succ_opt()) };
        let next = report::gather(pool, &next_day).await.expect("the report of the next day");
        assert_eq!(next.previous_classes.values(), classes_of(&view_sums(pool, &one_day).await), "before {}", day.day);
    }
}
