//! Rollups: the incremental refresh of `aggregate_rollup_daily` and the queries behind
//! `dmarcpipe report --by ...`.
//!
//! The rollup table is refreshed after every import and before every report (and
//! periodically by `serve`), from reports not yet counted; queries then read only the rollup,
//! which stays small (one row per day, domain, reporter, source and result) however many
//! records accumulate.

use chrono::NaiveDate;
use serde::Serialize;
use sqlx::{AssertSqlSafe, FromRow, PgPool};

use crate::error::StoreError;

/// Reports taken per refresh transaction.
const REFRESH_BATCH: i32 = 2_000;

/// What a rollup is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollupKey {
    /// DMARC result: pass or fail.
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
            RollupKey::Result => "coalesce(dmarc_result, 'unknown')",
            RollupKey::Source => "coalesce(host(source_ip), 'unknown')",
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
                "sum(messages)::bigint AS messages, sum(dmarc_pass)::bigint AS dmarc_pass, \
                 sum(dmarc_fail)::bigint AS dmarc_fail, sum(disposition_none)::bigint AS disposition_none, \
                 sum(disposition_quarantine)::bigint AS disposition_quarantine, \
                 sum(disposition_reject)::bigint AS disposition_reject, sum(dkim_aligned)::bigint AS dkim_aligned, \
                 sum(spf_aligned)::bigint AS spf_aligned, sum(records)::bigint AS records \
                 FROM dmarc_daily_sources"
            }
            _ => {
                "sum(messages)::bigint AS messages, \
                 coalesce(sum(messages) FILTER (WHERE dmarc_result = 'pass'), 0)::bigint AS dmarc_pass, \
                 coalesce(sum(messages) FILTER (WHERE dmarc_result = 'fail'), 0)::bigint AS dmarc_fail, \
                 coalesce(sum(messages) FILTER (WHERE disposition IN ('none', 'pass')), 0)::bigint AS disposition_none, \
                 coalesce(sum(messages) FILTER (WHERE disposition = 'quarantine'), 0)::bigint AS disposition_quarantine, \
                 coalesce(sum(messages) FILTER (WHERE disposition = 'reject'), 0)::bigint AS disposition_reject, \
                 coalesce(sum(messages) FILTER (WHERE dkim_aligned = 'pass'), 0)::bigint AS dkim_aligned, \
                 coalesce(sum(messages) FILTER (WHERE spf_aligned = 'pass'), 0)::bigint AS spf_aligned, \
                 sum(records)::bigint AS records \
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

/// One row of a rollup: message counts for one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, FromRow)]
pub struct RollupRow {
    pub key: String,
    pub messages: i64,
    pub dmarc_pass: i64,
    pub dmarc_fail: i64,
    pub disposition_none: i64,
    pub disposition_quarantine: i64,
    pub disposition_reject: i64,
    pub dkim_aligned: i64,
    pub spf_aligned: i64,
    pub records: i64,
}

/// Adds every report not yet counted to the rollup; returns how many were added.
pub async fn refresh(pool: &PgPool) -> Result<u64, StoreError> {
    let mut total = 0u64;
    loop {
        let taken: i32 =
            sqlx::query_scalar("SELECT dmarcpipe_refresh_rollups($1)").bind(REFRESH_BATCH).fetch_one(pool).await?;
        total += taken as u64;
        if taken < REFRESH_BATCH {
            return Ok(total);
        }
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
         ORDER BY messages DESC, key",
        key = key.expression(),
        sums = key.sums(),
    );
    let rows = sqlx::query_as(AssertSqlSafe(sql))
        .bind(&filter.domain)
        .bind(filter.since)
        .bind(filter.until)
        .fetch_all(pool)
        .await?;
    Ok(rows)
}
