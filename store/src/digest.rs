//! The figures of the digest mail (`dmarcpipe digest`), from the rollups.
//!
//! Input: a [`RollupFilter`] (policy domain, first day, day after the last). Output: the
//! period's totals, its top sources by messages and by failing messages, and each policy
//! domain's standing (messages, DMARC pass, days with reports, the `p=` it last published).
//! Everything but the report counts and the policy comes from the daily rollups
//! (`dmarc_daily`, `dmarc_daily_sources`), as `dmarcpipe report` does, so the mail and
//! `report --by ...` agree; days are the UTC day a report's period begins.

use serde::Serialize;
use sqlx::{FromRow, PgPool};

use crate::error::StoreError;
use crate::forensic::{self, CountKey};
use crate::rollup::{Count, RollupFilter};

/// The filter of the daily rollups and of `aggregate_reports` (by the day its period begins).
const DAILY_FILTER: &str = "($1::text IS NULL OR policy_domain = lower($1)) \
    AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)";
const REPORT_FILTER: &str = "($1::text IS NULL OR policy_domain = lower($1)) \
    AND ($2::date IS NULL OR date_begin >= $2::date::timestamp AT TIME ZONE 'UTC') \
    AND ($3::date IS NULL OR date_begin < $3::date::timestamp AT TIME ZONE 'UTC')";

/// Sums over a period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct Totals {
    pub messages: Count,
    pub dmarc_pass: Count,
    pub dkim_aligned: Count,
    pub spf_aligned: Count,
    /// Quarantined or rejected.
    pub enforced: Count,
    pub reporters: i64,
    pub domains: i64,
    /// Aggregate reports whose period begins in the period.
    #[sqlx(skip)]
    pub reports: i64,
    /// Failure reports that arrived in the period.
    #[sqlx(skip)]
    pub failure_reports: i64,
}

/// The sums as the digest and the report show them.
impl From<&Totals> for dmarcpipe_render::digest::Totals {
    fn from(sums: &Totals) -> Self {
        dmarcpipe_render::digest::Totals {
            messages: sums.messages.0,
            dmarc_pass: sums.dmarc_pass.0,
            dkim_aligned: sums.dkim_aligned.0,
            spf_aligned: sums.spf_aligned.0,
            enforced: sums.enforced.0,
            reports: sums.reports.into(),
            reporters: sums.reporters.into(),
            domains: sums.domains.into(),
            failure_reports: sums.failure_reports.into(),
        }
    }
}

/// A source's sums (with its policy domain when listed per domain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct SourceCounts {
    /// `None`: records without a source address.
    pub source: Option<String>,
    pub domain: Option<String>,
    pub messages: Count,
    pub dmarc_pass: Count,
    pub dmarc_fail: Count,
    pub dkim_aligned: Count,
    pub spf_aligned: Count,
    pub disposition_none: Count,
    pub disposition_quarantine: Count,
    pub disposition_reject: Count,
}

/// A policy domain over the period.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, FromRow)]
pub struct DomainStanding {
    pub domain: String,
    pub messages: Count,
    pub dmarc_pass: Count,
    /// Days with reports.
    pub days: i64,
    /// The `p=` of the latest report of the period.
    pub policy: Option<String>,
}

/// A domain's standing as the digest and the report show it.
impl From<DomainStanding> for dmarcpipe_render::digest::DomainStanding {
    fn from(domain: DomainStanding) -> Self {
        dmarcpipe_render::digest::DomainStanding {
            domain: domain.domain,
            messages: domain.messages.0,
            dmarc_pass: domain.dmarc_pass.0,
            policy: domain.policy,
            days: domain.days,
        }
    }
}

const SOURCE_SUMS: &str = "sum(messages)::text AS messages, sum(dmarc_pass)::text AS dmarc_pass, \
    sum(dmarc_fail)::text AS dmarc_fail, sum(dkim_aligned)::text AS dkim_aligned, \
    sum(spf_aligned)::text AS spf_aligned, sum(disposition_none)::text AS disposition_none, \
    sum(disposition_quarantine)::text AS disposition_quarantine, \
    sum(disposition_reject)::text AS disposition_reject";

/// The period's totals.
pub async fn totals(pool: &PgPool, filter: &RollupFilter) -> Result<Totals, StoreError> {
    let sql = format!(
        "SELECT coalesce(sum(messages), 0)::text AS messages, \
         coalesce(sum(messages) FILTER (WHERE dmarc_result = 'pass'), 0)::text AS dmarc_pass, \
         coalesce(sum(messages) FILTER (WHERE dkim_aligned = 'pass'), 0)::text AS dkim_aligned, \
         coalesce(sum(messages) FILTER (WHERE spf_aligned = 'pass'), 0)::text AS spf_aligned, \
         coalesce(sum(messages) FILTER (WHERE disposition IN ('quarantine', 'reject')), 0)::text AS enforced, \
         count(DISTINCT org_name) AS reporters, count(DISTINCT policy_domain) AS domains \
         FROM dmarc_daily WHERE {DAILY_FILTER}"
    );
    let mut totals: Totals = filter.fetch_all(pool, sql).await?.pop().unwrap_or_default();
    let reports: Vec<(i64,)> =
        filter.fetch_all(pool, format!("SELECT count(*) FROM aggregate_reports WHERE {REPORT_FILTER}")).await?;
    totals.reports = reports.first().map_or(0, |row| row.0);
    // Per first reported domain (or the filtered one), every report counted once.
    totals.failure_reports =
        forensic::counts(pool, CountKey::Domain, filter).await?.iter().map(|(_, count)| count).sum();
    Ok(totals)
}

/// The `limit` sources that sent the most messages (over all domains of the filter).
pub async fn top_sources(pool: &PgPool, filter: &RollupFilter, limit: u32) -> Result<Vec<SourceCounts>, StoreError> {
    let sql = format!(
        "SELECT host(source_ip) AS source, NULL::text AS domain, {SOURCE_SUMS} \
         FROM dmarc_daily_sources WHERE {DAILY_FILTER} \
         GROUP BY source_ip ORDER BY sum(messages) DESC, source_ip LIMIT {limit}"
    );
    filter.fetch_all(pool, sql).await
}

/// The `limit` (policy domain, source) pairs with the most messages failing DMARC.
pub async fn failing_sources(
    pool: &PgPool,
    filter: &RollupFilter,
    limit: u32,
) -> Result<Vec<SourceCounts>, StoreError> {
    let sql = format!(
        "SELECT host(source_ip) AS source, policy_domain AS domain, {SOURCE_SUMS} \
         FROM dmarc_daily_sources WHERE {DAILY_FILTER} \
         GROUP BY policy_domain, source_ip HAVING sum(dmarc_fail) > 0 \
         ORDER BY sum(dmarc_fail) DESC, policy_domain, source_ip LIMIT {limit}"
    );
    filter.fetch_all(pool, sql).await
}

/// The `limit` policy domains with the most messages.
pub async fn domains(pool: &PgPool, filter: &RollupFilter, limit: u32) -> Result<Vec<DomainStanding>, StoreError> {
    let sql = format!(
        "SELECT d.policy_domain AS domain, sum(messages)::text AS messages, \
         coalesce(sum(messages) FILTER (WHERE dmarc_result = 'pass'), 0)::text AS dmarc_pass, \
         count(DISTINCT day) AS days, \
         (SELECT policy_p FROM aggregate_reports r \
          WHERE r.policy_domain = d.policy_domain AND {report_filter} \
          ORDER BY date_begin DESC, id DESC LIMIT 1) AS policy \
         FROM dmarc_daily d WHERE {DAILY_FILTER} \
         GROUP BY d.policy_domain ORDER BY sum(messages) DESC, d.policy_domain LIMIT {limit}",
        report_filter = REPORT_FILTER.replace("policy_domain", "r.policy_domain"),
    );
    filter.fetch_all(pool, sql).await
}
