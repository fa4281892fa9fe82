//! Rollups: the sums of each report written with it, and the queries behind
//! `dmarcpipe report --by ...`.
//!
//! Every report's records are summed as they are written ([`RollupSums`]) and the sums are
//! appended to `aggregate_rollup_daily` and `aggregate_rollup_sources` in the report's own
//! transaction, so the rollups are never behind the records. The tables are append-only:
//! queries add up the rows of a key (one per day, domain, reporter or source and result per
//! report), which [`crate::compact`] merges into one per day and key, and per source over
//! all days.
//!
//! The keys of what is known of the sources (host, sender, country, ASN, location, and the
//! details of each source) join the sums per source with `source_ips` when the query runs, so
//! that enrichment done later shows in every report, and nothing about sources is copied into
//! the rollups.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::LazyLock;

use chrono::NaiveDate;
use dmarcpipe_ingest::model::{Disposition, DkimResult, Record, ReportHeader, Verdict, WireEnum};
use serde::Serialize;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::QueryAs;
use sqlx::{AssertSqlSafe, FromRow, PgPool, Postgres};

use crate::error::StoreError;
use crate::rows::{DailyRow, SourceRow, copy_statement};

/// What a rollup is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupKey {
    /// DMARC result: pass, fail, or `unknown` (no DMARC evaluation: neither aligned result
    /// was reported).
    Result,
    /// Source IP address, with what is known of it (details: PTR name, sender, country code,
    /// ASN).
    Source,
    /// Reporting organization.
    Org,
    /// Policy domain.
    Domain,
    /// UTC day the report period begins.
    Day,
    /// The registrable (base) domain of the source's PTR name, which groups a provider's many
    /// servers (`mail-sor-f41.google.com` and `mail-yw1-f170.google.com` are `google.com`).
    Host,
    /// The known sending service (details: its kind).
    Sender,
    /// ISO 3166-1 alpha-2 country code (details: the country's name).
    Country,
    /// Autonomous system number (details: the AS organisation).
    Asn,
    /// Latitude of a latitude/longitude point (details: longitude, country code, city).
    Location,
}

impl RollupKey {
    pub fn name(self) -> &'static str {
        match self {
            RollupKey::Result => "result",
            RollupKey::Source => "source",
            RollupKey::Org => "org",
            RollupKey::Domain => "domain",
            RollupKey::Day => "day",
            RollupKey::Host => "host",
            RollupKey::Sender => "sender",
            RollupKey::Country => "country",
            RollupKey::Asn => "asn",
            RollupKey::Location => "location",
        }
    }

    /// Whether the rollup counts the distinct sources of each key (`sources`): by the keys of
    /// what is known of the sources, other than the address itself.
    pub fn counts_sources(self) -> bool {
        self != RollupKey::Source && self.source_expressions().is_some()
    }

    /// The expression of a key of the daily rollup (`dmarc_daily`).
    fn daily_expression(self) -> Option<&'static str> {
        match self {
            // Records without a DMARC evaluation (neither aligned result reported).
            RollupKey::Result => Some("coalesce(dmarc_result, 'unknown')"),
            RollupKey::Org => Some("org_name"),
            RollupKey::Domain => Some("policy_domain"),
            RollupKey::Day => Some("to_char(day, 'YYYY-MM-DD')"),
            _ => None,
        }
    }

    /// For keys of the sources: the key over `s` (sums per source) and `i` (`source_ips`,
    /// joined at query time), another expression the rows are grouped by (or nothing), and the details (a
    /// text array). Sources not yet enriched, or of which nothing was found, group as
    /// `unknown` (text keys) or NULL (ASN, location).
    pub(crate) fn source_expressions(self) -> Option<(&'static str, &'static str, &'static str)> {
        Some(match self {
            // NULL for records whose source address was missing or unreadable.
            // Not grouped: the sums come one row per source (see [`query`]), and the address
            // and details as stored, in columns, which [`SourceRollupRow`] formats.
            RollupKey::Source => ("s.source_ip", "", "i.ptr_name, i.sender_name, i.country_code, i.asn"),
            RollupKey::Host => ("coalesce(i.ptr_base_domain, 'unknown')", "", "ARRAY[]::text[]"),
            RollupKey::Sender => ("coalesce(i.sender_name, 'unknown')", "", "ARRAY[min(i.sender_kind)]"),
            RollupKey::Country => ("coalesce(i.country_code, 'unknown')", "", "ARRAY[min(i.country_name)]"),
            RollupKey::Asn => ("i.asn::text", "", "ARRAY[min(i.as_org)]"),
            // A point only where both coordinates are known; the rest is one unknown group.
            RollupKey::Location => (
                "CASE WHEN i.longitude IS NOT NULL THEN i.latitude::text END",
                "CASE WHEN i.latitude IS NOT NULL THEN i.longitude END",
                "ARRAY[(CASE WHEN i.latitude IS NOT NULL THEN i.longitude END)::text, \
                       min(i.country_code) FILTER (WHERE i.latitude IS NOT NULL AND i.longitude IS NOT NULL), \
                       min(i.city) FILTER (WHERE i.latitude IS NOT NULL AND i.longitude IS NOT NULL)]",
            ),
            _ => return None,
        })
    }
}

/// The sums of the daily rollup (the breakdown is in its key).
const DAILY_SUMS: &str = "sum(messages)::text AS messages, \
     coalesce(sum(messages) FILTER (WHERE dmarc_result = 'pass'), 0)::text AS dmarc_pass, \
     coalesce(sum(messages) FILTER (WHERE dmarc_result = 'fail'), 0)::text AS dmarc_fail, \
     coalesce(sum(messages) FILTER (WHERE disposition IN ('none', 'pass')), 0)::text AS disposition_none, \
     coalesce(sum(messages) FILTER (WHERE disposition = 'quarantine'), 0)::text AS disposition_quarantine, \
     coalesce(sum(messages) FILTER (WHERE disposition = 'reject'), 0)::text AS disposition_reject, \
     coalesce(sum(messages) FILTER (WHERE dkim_aligned = 'pass'), 0)::text AS dkim_aligned, \
     coalesce(sum(messages) FILTER (WHERE spf_aligned = 'pass'), 0)::text AS spf_aligned, \
     sum(records)::text AS records";

/// The columns of the source rollups, which hold the breakdown as columns.
const SOURCE_COLUMNS: [&str; 9] = [
    "messages",
    "dmarc_pass",
    "dmarc_fail",
    "disposition_none",
    "disposition_quarantine",
    "disposition_reject",
    "dkim_aligned",
    "spf_aligned",
    "records",
];

/// Filters of a rollup query. Days are UTC; `until` is exclusive.
#[derive(Debug, Clone, Default)]
pub struct RollupFilter {
    pub domain: Option<String>,
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

impl RollupFilter {
    /// A query whose parameters are this filter (`$1` domain, `$2` since, `$3` until): the
    /// rollups here, the visual report's figures in `report`, the failure report counts in
    /// `forensic`, the TLS rollups in `tlsrpt`. `sql` must be formatted from constant
    /// expressions only: it is run as it is.
    pub(crate) fn query_as<O>(&self, sql: String) -> QueryAs<'_, Postgres, O, PgArguments>
    where
        O: for<'r> FromRow<'r, PgRow>,
    {
        sqlx::query_as(AssertSqlSafe(sql)).bind(&self.domain).bind(self.since).bind(self.until)
    }

    /// The rows of [`RollupFilter::query_as`].
    pub(crate) async fn fetch_all<O>(&self, pool: &PgPool, sql: String) -> Result<Vec<O>, StoreError>
    where
        O: for<'r> FromRow<'r, PgRow> + Send + Unpin,
    {
        Ok(self.query_as(sql).fetch_all(pool).await?)
    }
}

/// One row of a rollup: message counts for one key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct RollupRow {
    /// `None` by source: records without a source address; by ASN and location: sources of
    /// which that is not known.
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
    /// What is known of the key's sources, by the keys of the sources (see
    /// [`RollupKey::Source`] and the others); empty otherwise.
    #[sqlx(default)]
    pub details: Vec<Option<String>>,
    /// Distinct source addresses of the key, by the keys of the sources.
    #[sqlx(default)]
    pub sources: Option<i64>,
}

/// A sum of counts, exact however many reports it adds up: a `bigint` where the sums fit in
/// 64 bits (`dmarcpipe_sum`, see [`Sums`]), otherwise PostgreSQL's `numeric`, which the
/// queries hand over as text. (One report counts at most 2<sup>40</sup> messages, so that no
/// single report can make a sum overflow; many could go past 2<sup>63</sup>, which a `bigint`
/// result would refuse.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Count(pub i128);

impl sqlx::Type<sqlx::Postgres> for Count {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        <String as sqlx::Type<sqlx::Postgres>>::type_info()
    }

    fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
        <i64 as sqlx::Type<sqlx::Postgres>>::compatible(ty) || <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Postgres> for Count {
    fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        use sqlx::ValueRef as _;
        if <i64 as sqlx::Type<sqlx::Postgres>>::compatible(&value.type_info()) {
            return Ok(Count(<i64 as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?.into()));
        }
        let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
        Ok(Count(text.parse()?))
    }
}

/// A row of the rollup by source as PostgreSQL sends it: the address, what is known of it
/// (PTR name, sender, country code, ASN) as stored, and the sums, in that order. The address
/// and the details are formatted here: formatting 100,000 of them in SQL (`host()`, an
/// array, the sums as text) took a quarter of the query.
struct SourceRollupRow {
    row: RollupRow,
    /// The address, for the order of the rows (see [`SourceRollupRow::order`]).
    address: Option<IpAddr>,
}

impl SourceRollupRow {
    /// The order of the rollup by source: most messages first, sources of as many messages in
    /// the order of their addresses (IPv4 before IPv6, as PostgreSQL orders `inet`), the row
    /// without an address last. The rows are sorted here rather than by PostgreSQL: sorting
    /// 100,000 sums there took a sixth of the query, and the rows could not come before the
    /// sort was done.
    fn order(&self) -> (std::cmp::Reverse<i128>, bool, Option<IpAddr>) {
        (std::cmp::Reverse(self.row.messages.0), self.address.is_none(), self.address)
    }
}

impl<'r> FromRow<'r, PgRow> for SourceRollupRow {
    fn from_row(row: &'r PgRow) -> Result<Self, sqlx::Error> {
        use sqlx::Row as _;
        let source: Option<ipnetwork::IpNetwork> = row.try_get(0)?;
        let details = vec![
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
            row.try_get::<Option<i64>, _>(4)?.map(|asn| asn.to_string()),
        ];
        let count = |index: usize| row.try_get::<Count, _>(5 + index);
        let address = source.map(|network| network.ip());
        let row = RollupRow {
            key: address.map(|address| address.to_string()),
            messages: count(0)?,
            dmarc_pass: count(1)?,
            dmarc_fail: count(2)?,
            disposition_none: count(3)?,
            disposition_quarantine: count(4)?,
            disposition_reject: count(5)?,
            dkim_aligned: count(6)?,
            spf_aligned: count(7)?,
            records: count(8)?,
            details,
            sources: Some(i64::from(source.is_some())),
        };
        Ok(SourceRollupRow { row, address })
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
    /// Not passing DMARC, with a forwarding override reason (see [`is_forwarding_override`]).
    forwarded_reason: i64,
    /// Not passing DMARC, without such a reason, with a DKIM signature that passes.
    dkim_unaligned: i64,
}

/// Whether a record's override reasons say it was forwarded: `forwarded`, `mailing_list`,
/// `trusted_forwarder`, or `local_policy` with a comment saying `arc=pass` (Google's ARC
/// overrides). The same rule as the SQL function `dmarcpipe_forwarding_override`.
pub fn is_forwarding_override(record: &Record) -> bool {
    record.reasons.iter().any(|reason| match reason.kind.as_str() {
        "forwarded" | "mailing_list" | "trusted_forwarder" => true,
        "local_policy" => reason.comment.as_deref().is_some_and(|comment| comment.to_lowercase().contains("arc=pass")),
        _ => false,
    })
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
        let result = record.dmarc_result();
        match result {
            Some(Verdict::Pass) => source.dmarc_pass += count,
            Some(Verdict::Fail) => source.dmarc_fail += count,
            None => {}
        }
        if result != Some(Verdict::Pass) {
            if is_forwarding_override(record) {
                source.forwarded_reason += count;
            } else if record.dkim.iter().any(|dkim| dkim.result == Some(DkimResult::Pass)) {
                source.dkim_unaligned += count;
            }
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
                forwarded_reason: sums.forwarded_reason,
                dkim_unaligned: sums.dkim_unaligned,
            })
            .collect()
    }
}

/// How the source rollups add up their counts.
///
/// Counts are `bigint`; PostgreSQL's `sum` of them is `numeric`, exact however large, but
/// adding up hundreds of thousands of rows in `numeric` takes most of a rollup's time.
/// `dmarcpipe_sum` adds up in `bigint` and refuses a sum past 64 bits (SQLSTATE 22003): the
/// rollups try that first and add up in `numeric` again only then ([`with_sums`]), so a sum
/// is exact either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sums {
    Bigint,
    Numeric,
}

impl Sums {
    /// The aggregate adding up `expression`.
    pub(crate) fn sum(self, expression: &str) -> String {
        match self {
            Sums::Bigint => format!("dmarcpipe_sum({expression})"),
            Sums::Numeric => format!("sum({expression})"),
        }
    }

    /// A sum as a query hands it over (see [`Count`]): a `bigint` as it is, a `numeric` as text.
    fn output(self, expression: &str) -> String {
        match self {
            Sums::Bigint => expression.to_owned(),
            Sums::Numeric => format!("({expression})::text"),
        }
    }

    /// A single `bigint` count as the type of the sums.
    fn as_sum(self, expression: &str) -> String {
        match self {
            Sums::Bigint => expression.to_owned(),
            Sums::Numeric => format!("{expression}::numeric"),
        }
    }
}

/// `query(Sums::Bigint)`, and once more with `numeric` sums when a sum did not fit in 64 bits.
pub(crate) async fn with_sums<T>(mut query: impl AsyncFnMut(Sums) -> Result<T, StoreError>) -> Result<T, StoreError> {
    match query(Sums::Bigint).await {
        Err(err) if err.is_out_of_range() => query(Sums::Numeric).await,
        answer => answer,
    }
}

/// The days `$2` to `$3` of a filter (see [`RollupFilter::query_as`]), of a table with a `day`.
const PERIOD: &str = "($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)";

/// One row per source address (and one for records without an address), or per policy domain
/// and source with `per_domain`, with the sums of `columns` (numeric) for the filter: the keys
/// and the sums. The rollups by the keys of the sources and the visual report read their sums
/// per source here.
///
/// With days, the rows per day and source added up; per source over every domain, the whole
/// weeks of the period come from the weekly level instead (see [`over_weeks`]). Without days,
/// the level holding a row per key (the totals over every domain, or those per domain) with
/// the rows appended since the last compaction: see [`with_appended`].
pub(crate) fn per_source(filter: &RollupFilter, per_domain: bool, columns: &[&str], sums: Sums) -> String {
    const DOMAIN: &str = "($1::text IS NULL OR policy_domain = lower($1))";
    let keys: &[&str] = if per_domain { &["policy_domain", "source_ip"] } else { &["source_ip"] };
    if filter.since.is_some() || filter.until.is_some() {
        let keys = keys.join(", ");
        let summed =
            columns.iter().map(|column| format!("{} AS {column}", sums.sum(column))).collect::<Vec<_>>().join(", ");
        if !per_domain
            && filter.domain.is_none()
            && let Some(weeks) = WholeWeeks::of(filter.since, filter.until)
        {
            return over_weeks(&weeks, columns, &summed);
        }
        return format!(
            "SELECT {keys}, {summed} FROM aggregate_rollup_sources WHERE {DOMAIN} AND {PERIOD} GROUP BY {keys}"
        );
    }
    if per_domain || filter.domain.is_some() {
        with_appended(&format!("(SELECT * FROM aggregate_rollup_source_totals WHERE {DOMAIN})"), keys, columns, sums)
    } else {
        with_appended("aggregate_rollup_source_ip_totals", keys, columns, sums)
    }
}

/// The weeks (Monday to Sunday, as `date_trunc('week', day)`) lying wholly within a period of
/// days `[since, until)`: from the Monday `first` to the Monday `end` (exclusive), either open
/// like the period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct WholeWeeks {
    first: Option<NaiveDate>,
    end: Option<NaiveDate>,
}

impl WholeWeeks {
    /// The whole weeks of the period, `None` when it holds none.
    fn of(since: Option<NaiveDate>, until: Option<NaiveDate>) -> Option<WholeWeeks> {
        use chrono::Datelike as _;
        let first = since.map(|day| day + chrono::Days::new(u64::from((7 - day.weekday().num_days_from_monday()) % 7)));
        let end = until.map(|day| day - chrono::Days::new(u64::from(day.weekday().num_days_from_monday())));
        match (first, end) {
            (Some(first), Some(end)) if first >= end => None,
            _ => Some(WholeWeeks { first, end }),
        }
    }

    /// The condition that `column`, a day, lies in the whole weeks.
    fn within(&self, column: &str) -> String {
        // Dates formatted by chrono (`2026-11-02`), not text from the user.
        let after_first = self.first.map(|first| format!("{column} >= DATE '{first}'"));
        let before_end = self.end.map(|end| format!("{column} < DATE '{end}'"));
        let parts: Vec<String> = after_first.into_iter().chain(before_end).collect();
        if parts.is_empty() { "true".to_owned() } else { parts.join(" AND ") }
    }

    /// The condition that `column`, a day, lies outside the whole weeks.
    fn outside(&self, column: &str) -> String {
        let before_first = self.first.map(|first| format!("{column} < DATE '{first}'"));
        let after_end = self.end.map(|end| format!("{column} >= DATE '{end}'"));
        let parts: Vec<String> = before_first.into_iter().chain(after_end).collect();
        if parts.is_empty() { "false".to_owned() } else { format!("({})", parts.join(" OR ")) }
    }
}

/// The sums per source over every domain (`$1` is NULL) for the days `$2` to `$3`: the whole
/// `weeks` from the weekly level, the other days of the period from the compacted rows per
/// day, and the rows appended since the last compaction for every day of the period. A
/// month's rollup then adds up about half as many rows (see migration 20261202190001).
fn over_weeks(weeks: &WholeWeeks, columns: &[&str], summed: &str) -> String {
    let columns = columns.join(", ");
    format!(
        "SELECT source_ip, {summed} FROM ( \
             SELECT source_ip, {columns} FROM aggregate_rollup_source_weeks \
             WHERE $1::text IS NULL AND {in_weeks} \
             UNION ALL \
             SELECT source_ip, {columns} FROM aggregate_rollup_sources_compacted \
             WHERE {PERIOD} AND {outside_weeks} \
             UNION ALL \
             SELECT source_ip, {columns} FROM ONLY aggregate_rollup_sources WHERE {PERIOD} \
         ) r GROUP BY source_ip",
        in_weeks = weeks.within("week"),
        outside_weeks = weeks.outside("day"),
    )
}

/// The rows of `level`, a compacted level of the source rollups holding one row per `keys`
/// (`source_ip` last, the only one that may be NULL) and the policy domain `$1` if given, with
/// the rows appended since the last compaction (`ONLY aggregate_rollup_sources`, for the domain
/// `$1`, whose days must not be restricted: `$2` and `$3` are NULL) added: one row per key,
/// with the keys and `columns` (summed as `sums` says).
///
/// Most keys have no rows appended: those rows are taken as they are, and only the others
/// (and the row without an address) are added up with their appended rows. Adding up every
/// row of the level again is what took most of the time of the rollups.
fn with_appended(level: &str, keys: &[&str], columns: &[&str], sums: Sums) -> String {
    let keys_list = keys.join(", ");
    let columns_list = columns.join(", ");
    let as_numbers = columns.iter().map(|column| sums.as_sum(&format!("l.{column}"))).collect::<Vec<_>>().join(", ");
    let sums = columns.iter().map(|column| format!("{} AS {column}", sums.sum(column))).collect::<Vec<_>>().join(", ");
    let level_keys = keys.iter().map(|key| format!("l.{key}")).collect::<Vec<_>>().join(", ");
    let level_columns = columns.iter().map(|column| format!("l.{column}")).collect::<Vec<_>>().join(", ");
    let same_key = keys.iter().map(|key| format!("a.{key} = l.{key}")).collect::<Vec<_>>().join(" AND ");
    format!(
        "WITH appended AS ( \
             SELECT {keys_list}, {sums} FROM ONLY aggregate_rollup_sources \
             WHERE ($1::text IS NULL OR policy_domain = lower($1)) AND $2::date IS NULL AND $3::date IS NULL \
             GROUP BY {keys_list} \
         ) \
         SELECT {level_keys}, {as_numbers} FROM {level} l \
         WHERE l.source_ip IS NOT NULL AND NOT EXISTS (SELECT FROM appended a WHERE {same_key}) \
         UNION ALL \
         SELECT {keys_list}, {sums} FROM ( \
             SELECT {level_keys}, {level_columns} FROM {level} l \
             WHERE l.source_ip IS NULL OR EXISTS (SELECT FROM appended a WHERE {same_key}) \
             UNION ALL \
             SELECT {keys_list}, {columns_list} FROM appended \
         ) m GROUP BY {keys_list}"
    )
}

/// Message totals per key, most messages first (by day: in order of days).
pub async fn query(pool: &PgPool, key: RollupKey, filter: &RollupFilter) -> Result<Vec<RollupRow>, StoreError> {
    query_map(pool, key, filter, |row| row).await
}

/// [`query`], each row handed to `map` as it arrives, and what it makes of it kept: a rollup
/// by source has a row per source, and holding 100,000 of them as rows and again as what is
/// made of them took most of a report's memory, and page faults a third of its CPU time.
/// When the sums have to be added up again as exact numbers (past 64 bits), what was made of
/// the first rows is dropped and `map` sees every row again.
pub async fn query_map<T>(
    pool: &PgPool,
    key: RollupKey,
    filter: &RollupFilter,
    mut map: impl FnMut(RollupRow) -> T,
) -> Result<Vec<T>, StoreError> {
    with_sums(async |sums| {
        let sql = query_sql(key, filter, sums)?;
        let mut tx = tuned(pool).await?;
        if key.source_expressions().is_some() {
            // The sums per source are joined with what is known of each source by hashing:
            // the planner cannot estimate how many sources a union of levels adds up to
            // (it assumes 200) and would look up each of 100,000 sources in `source_ips`
            // instead, a third slower.
            sqlx::query("SET LOCAL enable_nestloop = off").execute(&mut *tx).await?;
        }
        let mut made = Vec::new();
        if key == RollupKey::Source {
            let mut ordered = Vec::new();
            for_each_row(&mut tx, sql, filter, |row: SourceRollupRow| ordered.push((row.order(), map(row.row))))
                .await?;
            // Each address once, so the order is total.
            ordered.sort_unstable_by_key(|(order, _)| *order);
            made.extend(ordered.into_iter().map(|(_, made)| made));
        } else {
            for_each_row(&mut tx, sql, filter, |row: RollupRow| made.push(map(row))).await?;
        }
        tx.commit().await?;
        Ok(made)
    })
    .await
}

/// A transaction in which the sums of a hundred thousand sources are hashed in memory rather
/// than sorted on disk, and queries are not compiled (JIT takes longer than the query): for
/// the rollups here and the visual report's figures.
pub(crate) async fn tuned(pool: &PgPool) -> Result<sqlx::Transaction<'static, Postgres>, StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL work_mem = '64MB'").execute(&mut *tx).await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    Ok(tx)
}

/// Each row of the rollup statement `sql` with the filter's parameters, as it arrives.
async fn for_each_row<O>(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    sql: String,
    filter: &RollupFilter,
    mut each: impl FnMut(O),
) -> Result<(), StoreError>
where
    O: for<'r> FromRow<'r, PgRow> + Send + Unpin,
{
    use futures_util::TryStreamExt as _;
    let mut rows = filter.query_as(sql).fetch(&mut **tx);
    while let Some(row) = rows.try_next().await? {
        each(row);
    }
    Ok(())
}

/// The statement of [`query`].
fn query_sql(key: RollupKey, filter: &RollupFilter, sums: Sums) -> Result<String, StoreError> {
    Ok(match (key.daily_expression(), key.source_expressions()) {
        (Some(expression), _) => format!(
            "SELECT {expression} AS key, {DAILY_SUMS} FROM dmarc_daily \
             WHERE ($1::text IS NULL OR policy_domain = lower($1)) \
               AND ($2::date IS NULL OR day >= $2) \
               AND ($3::date IS NULL OR day < $3) \
             GROUP BY 1 \
             ORDER BY {order}",
            order = if key == RollupKey::Day { "key" } else { "sum(messages) DESC, key" },
        ),
        // A row per source: nothing left to add up (the source's address is its key). The
        // columns are those [`SourceRollupRow`] reads, which also puts the rows in order.
        (None, Some((expression, _, details))) if key == RollupKey::Source => format!(
            "SELECT {expression}, {details}, {columns} \
             FROM ({per_source}) s LEFT JOIN source_ips i ON i.ip = s.source_ip",
            columns = SOURCE_COLUMNS.map(|column| sums.output(&format!("s.{column}"))).join(", "),
            per_source = per_source(filter, false, &SOURCE_COLUMNS, sums),
        ),
        (None, Some((expression, grouped, details))) => format!(
            "SELECT {expression} AS key, {details} AS details, {columns}, count(s.source_ip) AS sources \
             FROM ({per_source}) s LEFT JOIN source_ips i ON i.ip = s.source_ip \
             GROUP BY 1{grouped} \
             ORDER BY {messages} DESC, key{grouped}",
            columns = SOURCE_COLUMNS
                .map(|column| format!("{} AS {column}", sums.output(&sums.sum(&format!("s.{column}")))))
                .join(", "),
            messages = sums.sum("s.messages"),
            per_source = per_source(filter, false, &SOURCE_COLUMNS, sums),
            grouped = if grouped.is_empty() { String::new() } else { format!(", {grouped}") },
        ),
        (None, None) => return Err(StoreError::Data(format!("no rollup by {}", key.name()))),
    })
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

    /// The whole weeks of a period: Monday on or after its first day to Monday on or before
    /// its end (exclusive), none when no week fits, either end open like the period.
    #[test]
    fn whole_weeks_of_periods() {
        use super::WholeWeeks;
        let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d);
        let weeks = |first, end| Some(WholeWeeks { first, end });
        // 2026-11-02 and 9 and 16 are Mondays.
        assert_eq!(WholeWeeks::of(day(2), day(16)), weeks(day(2), day(16)));
        assert_eq!(WholeWeeks::of(day(1), day(17)), weeks(day(2), day(16)));
        assert_eq!(WholeWeeks::of(day(3), day(15)), None);
        assert_eq!(WholeWeeks::of(day(3), day(16)), weeks(day(9), day(16)));
        assert_eq!(WholeWeeks::of(day(4), day(6)), None);
        assert_eq!(WholeWeeks::of(day(8), None), weeks(day(9), None));
        assert_eq!(WholeWeeks::of(None, day(8)), weeks(None, day(2)));
        let period = WholeWeeks { first: day(9), end: day(16) };
        assert_eq!(period.within("week"), "week >= DATE '2026-11-09' AND week < DATE '2026-11-16'");
        assert_eq!(period.outside("day"), "(day < DATE '2026-11-09' OR day >= DATE '2026-11-16')");
        assert_eq!(WholeWeeks { first: None, end: day(16) }.outside("day"), "(day >= DATE '2026-11-16')");
    }
}
