//! Rollups: the sums of each report written with it, and the queries behind
//! `dmarcpipe report --by ...`.
//!
//! Every report's records are summed as they are written ([`RollupSums`]) and the sums are
//! appended to `aggregate_rollup_daily` and `aggregate_rollup_sources` in the report's own
//! transaction, so the rollups are never behind the records. The tables are append-only:
//! queries add up the rows of a key, which stay few (one per day, domain, reporter or source
//! and result per report) however many records accumulate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use chrono::NaiveDate;
use dmarcpipe_ingest::model::{Disposition, Record, ReportHeader, Verdict, WireEnum};
use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow, PgPool};

use crate::error::StoreError;
use crate::rows::{DailyRow, SourceRow, copy_statement};

/// What a rollup is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupKey {
    /// DMARC result: pass, fail, or `unknown` (no DMARC evaluation: neither aligned result
    /// was reported).
    Result,
    /// Source IP address.
    Source,
    /// Reporting organization.
    Org,
    /// Policy domain.
    Domain,
    /// UTC day the report period begins.
    Day,
}

impl RollupKey {
    pub fn name(self) -> &'static str {
        match self {
            RollupKey::Result => "result",
            RollupKey::Source => "source",
            RollupKey::Org => "org",
            RollupKey::Domain => "domain",
            RollupKey::Day => "day",
        }
    }

    fn expression(self) -> &'static str {
        match self {
            // Records without a DMARC evaluation (neither aligned result reported).
            RollupKey::Result => "coalesce(dmarc_result, 'unknown')",
            // NULL for records whose source address was missing or unreadable.
            RollupKey::Source => "host(source_ip)",
            RollupKey::Org => "org_name",
            RollupKey::Domain => "policy_domain",
            RollupKey::Day => "to_char(day, 'YYYY-MM-DD')",
        }
    }

    /// Sources have their own rollup (with the breakdown as columns); the other keys share
    /// the daily one (with the breakdown in the key).
    fn sums(self) -> &'static str {
        match self {
            RollupKey::Source => {
                "sum(messages)::text AS messages, sum(dmarc_pass)::text AS dmarc_pass, \
                 sum(dmarc_fail)::text AS dmarc_fail, sum(disposition_none)::text AS disposition_none, \
                 sum(disposition_quarantine)::text AS disposition_quarantine, \
                 sum(disposition_reject)::text AS disposition_reject, sum(dkim_aligned)::text AS dkim_aligned, \
                 sum(spf_aligned)::text AS spf_aligned, sum(records)::text AS records \
                 FROM dmarc_daily_sources"
            }
            _ => {
                "sum(messages)::text AS messages, \
                 coalesce(sum(messages) FILTER (WHERE dmarc_result = 'pass'), 0)::text AS dmarc_pass, \
                 coalesce(sum(messages) FILTER (WHERE dmarc_result = 'fail'), 0)::text AS dmarc_fail, \
                 coalesce(sum(messages) FILTER (WHERE disposition IN ('none', 'pass')), 0)::text AS disposition_none, \
                 coalesce(sum(messages) FILTER (WHERE disposition = 'quarantine'), 0)::text AS disposition_quarantine, \
                 coalesce(sum(messages) FILTER (WHERE disposition = 'reject'), 0)::text AS disposition_reject, \
                 coalesce(sum(messages) FILTER (WHERE dkim_aligned = 'pass'), 0)::text AS dkim_aligned, \
                 coalesce(sum(messages) FILTER (WHERE spf_aligned = 'pass'), 0)::text AS spf_aligned, \
                 sum(records)::text AS records \
                 FROM dmarc_daily"
            }
        }
    }
}

/// Filters of a rollup query. Days are UTC; `until` is exclusive.
#[derive(Debug, Clone, Default)]
pub struct RollupFilter {
    pub domain: Option<String>,
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

impl RollupFilter {
    /// Runs a query whose parameters are this filter (`$1` domain, `$2` since, `$3` until) and
    /// returns its rows (the rollups here, the failure report counts in `forensic`, the TLS
    /// rollups in `tlsrpt`). `sql` must be formatted from constant expressions only: it is run
    /// as it is.
    pub(crate) async fn fetch_all<O>(&self, pool: &PgPool, sql: String) -> Result<Vec<O>, StoreError>
    where
        O: for<'r> FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(AssertSqlSafe(sql))
            .bind(&self.domain)
            .bind(self.since)
            .bind(self.until)
            .fetch_all(pool)
            .await?)
    }
}

/// One row of a rollup: message counts for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct RollupRow {
    /// `None` only by source: records without a source address.
    pub key: Option<String>,
    pub messages: Count,
    pub dmarc_pass: Count,
    pub dmarc_fail: Count,
    pub disposition_none: Count,
    pub disposition_quarantine: Count,
    pub disposition_reject: Count,
    pub dkim_aligned: Count,
    pub spf_aligned: Count,
    pub records: Count,
}

/// A sum of counts, exact however many reports it adds up: PostgreSQL sums `bigint` into
/// `numeric`, which the queries hand over as text. (One report counts at most
/// 2<sup>40</sup> messages, so that no single report can make a sum overflow; many could go
/// past 2<sup>63</sup>, which a `bigint` result would refuse.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Count(pub i128);

impl sqlx::Type<sqlx::Postgres> for Count {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Count {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
        Ok(Count(text.parse()?))
    }
}

/// `COPY aggregate_rollup_sources (...) FROM STDIN`, for the sums of large reports.
pub(crate) static SOURCES_COPY: LazyLock<String> =
    LazyLock::new(|| copy_statement(SourceRow::TABLE, SourceRow::COLUMNS));

/// Sums of one source (the columns of `aggregate_rollup_sources`).
#[derive(Debug, Default, Clone, Copy)]
struct SourceSums {
    messages: i64,
    dmarc_pass: i64,
    dmarc_fail: i64,
    disposition_none: i64,
    disposition_quarantine: i64,
    disposition_reject: i64,
    dkim_aligned: i64,
    spf_aligned: i64,
    records: i64,
}

/// A fast hasher (FxHash's mixing step, a splitmix64 finish): the std hasher resists flooding,
/// which costs a third of the rollup summing of a million records; keys here come from one
/// report and are only summed.
#[derive(Debug, Default, Clone, Copy)]
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u8(&mut self, byte: u8) {
        self.write_u64(u64::from(byte));
    }

    fn write_u32(&mut self, word: u32) {
        self.write_u64(u64::from(word));
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    /// A splitmix64 finalizer: the multiply alone leaves the low bits, which pick the bucket,
    /// depending only on the low bytes of the key (the same first octets for a whole network).
    fn finish(&self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<FxHasher>>;

/// Disposition, DKIM alignment and SPF alignment of a record.
type ResultKey = (Option<Disposition>, Option<Verdict>, Option<Verdict>);

/// The rollup rows of one report, summed while its records are written, so that a report of a
/// million records does not have to be read back to be rolled up.
#[derive(Debug)]
pub(crate) struct RollupSums {
    day: NaiveDate,
    policy_domain: String,
    org_name: String,
    /// (messages, records) per (disposition, DKIM aligned, SPF aligned).
    daily: FastMap<ResultKey, (i64, i64)>,
    sources: FastMap<Option<IpAddr>, SourceSums>,
}

impl RollupSums {
    pub fn new(header: &ReportHeader) -> Self {
        RollupSums {
            day: header.date_begin.date_naive(),
            policy_domain: header.policy.domain.clone(),
            org_name: header.org_name.clone(),
            daily: FastMap::default(),
            sources: FastMap::default(),
        }
    }

    pub fn add(&mut self, record: &Record) {
        let count = record.count;
        let daily = self.daily.entry((record.disposition, record.dkim_aligned, record.spf_aligned)).or_default();
        daily.0 += count;
        daily.1 += 1;
        let source = self.sources.entry(record.source_ip).or_default();
        source.messages += count;
        source.records += 1;
        match record.dmarc_result() {
            Some(Verdict::Pass) => source.dmarc_pass += count,
            Some(Verdict::Fail) => source.dmarc_fail += count,
            None => {}
        }
        match record.disposition {
            Some(Disposition::None | Disposition::Pass) => source.disposition_none += count,
            Some(Disposition::Quarantine) => source.disposition_quarantine += count,
            Some(Disposition::Reject) => source.disposition_reject += count,
            None => {}
        }
        if record.dkim_aligned == Some(Verdict::Pass) {
            source.dkim_aligned += count;
        }
        if record.spf_aligned == Some(Verdict::Pass) {
            source.spf_aligned += count;
        }
    }

    /// The rows for `aggregate_rollup_daily`.
    pub fn daily_rows(&self) -> Vec<DailyRow> {
        self.daily
            .iter()
            .map(|((disposition, dkim, spf), (messages, records))| DailyRow {
                day: self.day,
                policy_domain: self.policy_domain.clone(),
                org_name: self.org_name.clone(),
                disposition: disposition.map(WireEnum::as_str),
                dkim_aligned: dkim.map(WireEnum::as_str),
                spf_aligned: spf.map(WireEnum::as_str),
                messages: *messages,
                records: *records,
            })
            .collect()
    }

    /// How many sources are summed so far. A report with very many distinct addresses hands
    /// its source rows over part by part ([`RollupSums::take_source_rows`]) rather than holding
    /// them all: the rows are appended, so summing on afresh is exact.
    pub fn sources_held(&self) -> usize {
        self.sources.len()
    }

    /// The rows for `aggregate_rollup_sources` summed so far, which are forgotten.
    pub fn take_source_rows(&mut self) -> Vec<SourceRow> {
        self.sources
            .drain()
            .map(|(ip, sums)| SourceRow {
                day: self.day,
                policy_domain: self.policy_domain.clone(),
                source_ip: ip,
                messages: sums.messages,
                dmarc_pass: sums.dmarc_pass,
                dmarc_fail: sums.dmarc_fail,
                disposition_none: sums.disposition_none,
                disposition_quarantine: sums.disposition_quarantine,
                disposition_reject: sums.disposition_reject,
                dkim_aligned: sums.dkim_aligned,
                spf_aligned: sums.spf_aligned,
                records: sums.records,
            })
            .collect()
    }
}

/// Message totals per key, most messages first.
pub async fn query(pool: &PgPool, key: RollupKey, filter: &RollupFilter) -> Result<Vec<RollupRow>, StoreError> {
    let sql = format!(
        "SELECT {key} AS key, {sums} \
         WHERE ($1::text IS NULL OR policy_domain = lower($1)) \
           AND ($2::date IS NULL OR day >= $2) \
           AND ($3::date IS NULL OR day < $3) \
         GROUP BY 1 \
         ORDER BY {order}",
        key = key.expression(),
        sums = key.sums(),
        order = if key == RollupKey::Day { "key" } else { "sum(messages) DESC, key" },
    );
    filter.fetch_all(pool, sql).await
}

#[cfg(test)]
mod tests {
    use dmarcpipe_ingest::model::{Record, Verdict};
    use sqlx::PgPool;

    /// The rule of DMARC pass and fail has one definition in Rust (for the rollup sums) and one
    /// in SQL (for the views): they agree on every combination.
    #[sqlx::test(migrator = "crate::MIGRATOR")]
    async fn dmarc_result_is_the_same_in_rust_and_sql(pool: PgPool) {
        let values = [None, Some(Verdict::Pass), Some(Verdict::Fail)];
        for dkim in values {
            for spf in values {
                let record = Record {
                    source_ip: None,
                    count: 1,
                    disposition: None,
                    dkim_aligned: dkim,
                    spf_aligned: spf,
                    reasons: Vec::new(),
                    header_from: None,
                    envelope_from: None,
                    envelope_to: None,
                    dkim: Vec::new(),
                    spf: Vec::new(),
                    raw: Vec::new(),
                    extensions: None,
                };
                let sql: Option<String> = sqlx::query_scalar("SELECT dmarcpipe_dmarc_result($1, $2)")
                    .bind(dkim.map(|v| v.as_str()))
                    .bind(spf.map(|v| v.as_str()))
                    .fetch_one(&pool)
                    .await
                    .expect("the function runs");
                assert_eq!(record.dmarc_result().map(|v| v.as_str().to_owned()), sql, "dkim {dkim:?}, spf {spf:?}");
            }
        }
    }
}
