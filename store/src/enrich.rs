//! The enrichment queue in `source_ips`: which addresses are due, who takes them, and what
//! was found.
//!
//! A row is queued (due at once) by the transaction that stores the first record from its
//! address (`write::finish`); [`queue_all_sources`] does the same for the records of a database
//! older than the queue. Enrichers on any number of hosts share the work through
//! [`claim_due`]: it takes due rows with `FOR UPDATE SKIP LOCKED` and pushes their
//! `enrich_due` forward by a lease in the same statement, so that no two enrichers ever take
//! the same address (an enricher that dies leaves its addresses due again once the lease is
//! over). [`record`] writes what the enricher found (`dmarcpipe_ingest::enrich::enricher`) and
//! when the address is due next:
//!
//! - a PTR answer (found, NXDOMAIN, no answer) replaces the stored one and is kept until its
//!   TTL runs out (`ptr_expires`), which makes the address due again, at the latest after
//!   [`Schedule::refresh`];
//! - a lookup that timed out or failed keeps the older good answer, if any, counts the failure
//!   (`ptr_failures`) and makes the address due again after a backoff that doubles with each
//!   failure in a row, from [`Schedule::backoff`] up to [`Schedule::backoff_cap`];
//! - without DNS, the PTR columns are left as they are;
//! - geography and network are written when a database is open (with the database they came
//!   from, or the first one consulted when none placed the address), left as they are
//!   otherwise; the sender is always written.
//!
//! [`mark_stale_due`] (`enrich --stale`) makes due the rows whose parts expired or came from a
//! database that is no longer the one open; [`mark_all_due`] (`enrich --all`) every row.

use std::net::IpAddr;
use std::time::Duration;

use dmarcpipe_ingest::enrich::enricher::{Enrichment, KnownPtr, Task};
use sqlx::PgPool;

use crate::error::StoreError;

/// When addresses are due again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// How long a claimed address is reserved for its enricher.
    pub lease: Duration,
    /// The longest time before an address is looked at again, whatever its PTR TTL.
    pub refresh: Duration,
    /// The wait after a first transient DNS failure; doubled with each further one.
    pub backoff: Duration,
    /// The longest wait after transient DNS failures.
    pub backoff_cap: Duration,
}

impl Default for Schedule {
    fn default() -> Schedule {
        Schedule {
            lease: Duration::from_secs(10 * 60),
            refresh: Duration::from_secs(30 * 86_400),
            backoff: Duration::from_secs(5 * 60),
            backoff_cap: Duration::from_secs(86_400),
        }
    }
}

/// A claimed address and its stored PTR name, confirmation and base domain.
type ClaimedRow = (IpAddr, Option<String>, Option<bool>, Option<String>);

/// Takes up to `limit` due addresses (the longest due first) for this enricher, and makes
/// them due again only once `lease` is over (when the enricher died before recording them).
///
/// The rows locked by the inner query are updated through the primary key (`ip = ANY(...)`):
/// joined to a CTE instead, the planner hashed the whole table for every batch.
pub async fn claim_due(pool: &PgPool, limit: i64, lease: Duration) -> Result<Vec<Task>, StoreError> {
    let rows: Vec<ClaimedRow> = sqlx::query_as(
        "UPDATE source_ips s SET enrich_due = now() + make_interval(secs => $2) \
         WHERE s.ip = ANY(ARRAY( \
             SELECT ip FROM source_ips WHERE enrich_due <= now() \
             ORDER BY enrich_due LIMIT $1 FOR UPDATE SKIP LOCKED)) \
         RETURNING s.ip, s.ptr_name, s.ptr_confirmed, s.ptr_base_domain",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(ip, name, confirmed, base_domain)| Task { ip, known: KnownPtr { name, confirmed, base_domain } })
        .collect())
}

/// What the DNS column of [`record`] says of a row.
const DNS_NOT_LOOKED_UP: i16 = 0;
const DNS_ANSWERED: i16 = 1;
const DNS_FAILED: i16 = 2;

/// Writes what was found, one statement for the batch, and when each address is due next
/// (see the module documentation). Returns the number of rows written.
pub async fn record(pool: &PgPool, enrichments: &[Enrichment], schedule: &Schedule) -> Result<u64, StoreError> {
    if enrichments.is_empty() {
        return Ok(0);
    }
    let mut rows = Columns::default();
    for enrichment in enrichments {
        rows.push(enrichment);
    }
    let result = sqlx::query(
        "UPDATE source_ips s SET \
             ptr_names = CASE WHEN u.dns = 1 THEN string_to_array(u.ptr_names, ' ') ELSE s.ptr_names END, \
             ptr_name = CASE WHEN u.dns = 1 THEN u.ptr_name ELSE s.ptr_name END, \
             ptr_confirmed = CASE WHEN u.dns = 1 THEN u.ptr_confirmed ELSE s.ptr_confirmed END, \
             ptr_base_domain = CASE WHEN u.dns = 1 THEN u.ptr_base_domain ELSE s.ptr_base_domain END, \
             ptr_status = CASE WHEN u.dns = 1 THEN u.ptr_status \
                 WHEN u.dns = 2 AND s.ptr_status IN ('found', 'nxdomain', 'no_answer') THEN s.ptr_status \
                 WHEN u.dns = 2 THEN u.ptr_status ELSE s.ptr_status END, \
             ptr_looked_up = CASE WHEN u.dns = 1 THEN now() \
                 WHEN u.dns = 2 AND s.ptr_status IN ('found', 'nxdomain', 'no_answer') THEN s.ptr_looked_up \
                 WHEN u.dns = 2 THEN now() ELSE s.ptr_looked_up END, \
             ptr_expires = CASE WHEN u.dns = 1 THEN now() + make_interval(secs => u.ttl) ELSE s.ptr_expires END, \
             ptr_failures = CASE WHEN u.dns = 1 THEN 0 WHEN u.dns = 2 THEN s.ptr_failures + 1 \
                 ELSE s.ptr_failures END, \
             country_code = CASE WHEN u.geo THEN u.country_code ELSE s.country_code END, \
             country_name = CASE WHEN u.geo THEN u.country_name ELSE s.country_name END, \
             region = CASE WHEN u.geo THEN u.region ELSE s.region END, \
             city = CASE WHEN u.geo THEN u.city ELSE s.city END, \
             latitude = CASE WHEN u.geo THEN u.latitude ELSE s.latitude END, \
             longitude = CASE WHEN u.geo THEN u.longitude ELSE s.longitude END, \
             geo_source = CASE WHEN u.geo THEN u.geo_source ELSE s.geo_source END, \
             geo_looked_up = CASE WHEN u.geo THEN now() ELSE s.geo_looked_up END, \
             asn = CASE WHEN u.geo THEN u.asn ELSE s.asn END, \
             as_org = CASE WHEN u.geo THEN u.as_org ELSE s.as_org END, \
             asn_source = CASE WHEN u.geo THEN u.asn_source ELSE s.asn_source END, \
             asn_looked_up = CASE WHEN u.geo THEN now() ELSE s.asn_looked_up END, \
             sender_name = u.sender_name, \
             sender_kind = u.sender_kind, \
             sender_evidence = u.sender_evidence, \
             sender_looked_up = now(), \
             enrich_due = CASE \
                 WHEN u.dns = 1 THEN now() + least(make_interval(secs => u.ttl), make_interval(secs => $23)) \
                 WHEN u.dns = 2 THEN now() + least(make_interval(secs => $24) * power(2, least(s.ptr_failures, 30)), \
                     make_interval(secs => $25)) \
                 ELSE now() + make_interval(secs => $23) END \
         FROM unnest($1::inet[], $2::smallint[], $3::text[], $4::text[], $5::text[], $6::boolean[], $7::text[], \
                     $8::float8[], $9::boolean[], $10::text[], $11::text[], $12::text[], $13::text[], \
                     $14::float8[], $15::float8[], $16::text[], $17::bigint[], $18::text[], $19::text[], \
                     $20::text[], $21::text[], $22::text[]) \
             AS u(ip, dns, ptr_status, ptr_names, ptr_name, ptr_confirmed, ptr_base_domain, ttl, geo, \
                  country_code, country_name, region, city, latitude, longitude, geo_source, asn, as_org, \
                  asn_source, sender_name, sender_kind, sender_evidence) \
         WHERE s.ip = u.ip",
    )
    .bind(&rows.ip)
    .bind(&rows.dns)
    .bind(&rows.ptr_status)
    .bind(&rows.ptr_names)
    .bind(&rows.ptr_name)
    .bind(&rows.ptr_confirmed)
    .bind(&rows.ptr_base_domain)
    .bind(&rows.ttl)
    .bind(&rows.geo)
    .bind(&rows.country_code)
    .bind(&rows.country_name)
    .bind(&rows.region)
    .bind(&rows.city)
    .bind(&rows.latitude)
    .bind(&rows.longitude)
    .bind(&rows.geo_source)
    .bind(&rows.asn)
    .bind(&rows.as_org)
    .bind(&rows.asn_source)
    .bind(&rows.sender_name)
    .bind(&rows.sender_kind)
    .bind(&rows.sender_evidence)
    .bind(schedule.refresh.as_secs_f64())
    .bind(schedule.backoff.as_secs_f64())
    .bind(schedule.backoff_cap.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// The columns of [`record`], one array each.
#[derive(Debug, Default)]
struct Columns {
    ip: Vec<IpAddr>,
    dns: Vec<i16>,
    ptr_status: Vec<Option<&'static str>>,
    /// The PTR names separated by spaces (a host name has none).
    ptr_names: Vec<Option<String>>,
    ptr_name: Vec<Option<String>>,
    ptr_confirmed: Vec<Option<bool>>,
    ptr_base_domain: Vec<Option<String>>,
    ttl: Vec<f64>,
    geo: Vec<bool>,
    country_code: Vec<Option<String>>,
    country_name: Vec<Option<String>>,
    region: Vec<Option<String>>,
    city: Vec<Option<String>>,
    latitude: Vec<Option<f64>>,
    longitude: Vec<Option<f64>>,
    geo_source: Vec<Option<String>>,
    asn: Vec<Option<i64>>,
    as_org: Vec<Option<String>>,
    asn_source: Vec<Option<String>>,
    sender_name: Vec<Option<String>>,
    sender_kind: Vec<Option<&'static str>>,
    sender_evidence: Vec<Option<String>>,
}

impl Columns {
    fn push(&mut self, enrichment: &Enrichment) {
        self.ip.push(enrichment.ip);
        let answer = enrichment.ptr.as_ref();
        self.dns.push(match answer {
            None => DNS_NOT_LOOKED_UP,
            Some(answer) if answer.status.is_transient() => DNS_FAILED,
            Some(_) => DNS_ANSWERED,
        });
        self.ptr_status.push(answer.map(|answer| answer.status.as_str()));
        self.ptr_names.push(answer.filter(|answer| !answer.names.is_empty()).map(|answer| answer.names.join(" ")));
        self.ptr_name.push(answer.and_then(|answer| answer.name.clone()));
        self.ptr_confirmed.push(answer.and_then(|answer| answer.confirmed));
        self.ptr_base_domain.push(answer.and_then(|answer| answer.base_domain.clone()));
        self.ttl.push(answer.map_or(0.0, |answer| answer.ttl.as_secs_f64()));
        let geo = enrichment.geo.as_ref();
        self.geo.push(geo.is_some());
        self.country_code.push(geo.and_then(|facts| facts.country_code.clone()));
        self.country_name.push(geo.and_then(|facts| facts.country_name.clone()));
        self.region.push(geo.and_then(|facts| facts.region.clone()));
        self.city.push(geo.and_then(|facts| facts.city.clone()));
        self.latitude.push(geo.and_then(|facts| facts.latitude));
        self.longitude.push(geo.and_then(|facts| facts.longitude));
        self.geo_source.push(geo.and_then(|facts| facts.geo_source.clone()));
        self.asn.push(geo.and_then(|facts| facts.asn).map(i64::from));
        self.as_org.push(geo.and_then(|facts| facts.as_org.clone()));
        self.asn_source.push(geo.and_then(|facts| facts.asn_source.clone()));
        let sender = enrichment.sender.as_ref();
        self.sender_name.push(sender.map(|sender| sender.name.clone()));
        self.sender_kind.push(sender.map(|sender| sender.kind.as_str()));
        self.sender_evidence.push(sender.map(|sender| sender.evidence.clone()));
    }
}

/// Queues every source address of the stored records that has no `source_ips` row yet (a
/// database whose records came before the queue); returns how many were queued.
pub async fn queue_all_sources(pool: &PgPool) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "INSERT INTO source_ips (ip) \
         SELECT DISTINCT source_ip FROM aggregate_records WHERE source_ip IS NOT NULL ORDER BY 1 \
         ON CONFLICT (ip) DO NOTHING",
    )
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// Makes every address due (`enrich --all`); returns how many were not due yet.
pub async fn mark_all_due(pool: &PgPool) -> Result<u64, StoreError> {
    let result =
        sqlx::query("UPDATE source_ips SET enrich_due = '-infinity' WHERE enrich_due > now()").execute(pool).await?;
    Ok(result.rows_affected())
}

/// What makes a part stale, for [`mark_stale_due`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staleness {
    /// Reverse DNS is looked up: an expired or missing PTR answer is stale.
    pub dns: bool,
    /// The sources ([`GeoDatabases::sources`](dmarcpipe_ingest::enrich::geo::GeoDatabases::sources))
    /// of the open databases: geography or a network from any other is stale, and so is one
    /// never looked up. Empty: no database, no geography is stale for that.
    pub geo_sources: Vec<String>,
    /// Parts looked up longer ago than this are stale.
    pub refresh: Duration,
}

/// Makes due the addresses with a stale part (`enrich --stale`); returns how many were not due
/// yet.
pub async fn mark_stale_due(pool: &PgPool, staleness: &Staleness) -> Result<u64, StoreError> {
    let result = sqlx::query(
        "UPDATE source_ips SET enrich_due = '-infinity' \
         WHERE enrich_due > now() AND ( \
             ($1 AND (ptr_expires IS NULL OR ptr_expires <= now())) \
             OR (cardinality($2::text[]) > 0 AND (geo_looked_up IS NULL \
                 OR geo_source <> ALL($2::text[]) OR asn_source <> ALL($2::text[]))) \
             OR geo_looked_up < now() - make_interval(secs => $3) \
             OR sender_looked_up IS NULL OR sender_looked_up < now() - make_interval(secs => $3))",
    )
    .bind(staleness.dns)
    .bind(&staleness.geo_sources)
    .bind(staleness.refresh.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// The number of addresses due now.
pub async fn count_due(pool: &PgPool) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM source_ips WHERE enrich_due <= now()").fetch_one(pool).await?)
}
