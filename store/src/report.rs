//! The figures of the visual report (`dmarcpipe report --format html|pdf`) and the traffic
//! classes (`dmarcpipe report --by class`), from the rollups.
//!
//! Input: a [`RollupFilter`] (policy domain, first day, day after the last). Output: a
//! [`ReportData`] (types of `dmarcpipe_render::report::data`, which the page formats): the
//! period's and the previous period's headline figures, messages by class per day, per result,
//! the top sources with what is known of them and their class, per reporter, host, sender and
//! country, detailed statistics, the failure reports' clear metadata, and what to fix.
//!
//! Traffic classes (rules in `migrations/20261202020001_create_traffic_classes.sql` and the
//! README) come from the source rollups: the two record facts (`forwarded_reason`,
//! `dkim_unaligned`) are sums of the rollup; what is known of the source (`source_ips`) and
//! whether it ever passed for the domain (`dmarc_compliant_sources`) are joined when the query
//! runs. The class sums per source and domain are computed once per report into a temporary
//! table that the other queries read. Days are the UTC day a report's period begins.

use chrono::{Days, NaiveDate, Utc};
use dmarcpipe_render::report::data::{
    CLASSES, ClassCounts, DayClasses, DetailRow, DomainStanding, ForensicRow, GroupRow, ReportData, ResultRow,
    ServiceFix, SourceRow, Totals, UnknownSource,
};
use sqlx::{AssertSqlSafe, FromRow, PgConnection, PgPool};

use crate::digest as figures;
use crate::error::StoreError;
use crate::rollup::{self, Count, RollupFilter, RollupKey, Sums, with_sums};

/// Rows of each list of the report.
pub const TOP: i64 = 25;

/// Sender kinds whose failing mail counts as forwarded (`source_ips.sender_kind`).
const FORWARDING_KINDS: &str = "('forwarder', 'mailbox_provider')";

/// What the classes are summed over.
///
/// The class sums of a source's rows add up to the class sums of its summed rows (each class
/// is a sum of the rows' counts, chosen by what is known of the source and the domain), so
/// where only the classes' totals are needed, the rows are classified as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Span {
    /// The filter's period as a whole: a row per policy domain and source.
    Period,
    /// The rows of the filter's days as they are (a filter with days only).
    Rows,
    /// The rows per day, policy domain and source where messages did not pass DMARC, as they
    /// are (see [`daily_classes`]).
    FailingRows,
}

/// The sums of the source rollups for the filter (`$1` domain, `$2` since, `$3` until) with
/// the facts of the classes, per policy domain and source (and day).
fn source_sums(span: Span, filter: &RollupFilter, sums: Sums) -> String {
    const COLUMNS: [&str; 6] =
        ["messages", "dmarc_pass", "dkim_aligned", "spf_aligned", "forwarded_reason", "dkim_unaligned"];
    const DOMAIN: &str = "($1::text IS NULL OR policy_domain = lower($1))";
    const DAYS: &str = "($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)";
    let columns = COLUMNS.join(", ");
    match span {
        Span::FailingRows => format!(
            "SELECT day, policy_domain, source_ip, {columns} FROM aggregate_rollup_sources \
             WHERE {DOMAIN} AND {DAYS} AND messages > dmarc_pass"
        ),
        Span::Rows => format!(
            "SELECT day, policy_domain, source_ip, {columns} FROM aggregate_rollup_sources WHERE {DOMAIN} AND {DAYS}"
        ),
        // As the rollups by the keys of the sources read them, per policy domain.
        Span::Period => rollup::per_source(filter, true, &COLUMNS, sums),
    }
}

/// Whether the source `s.source_ip` ever had DMARC-pass messages for `s.policy_domain`: a row
/// of `dmarc_compliant_sources`, asked of the rows the view adds up (its sums are of counts,
/// never negative, so one row above zero is enough), which the planner hashes once rather than
/// adding up every source of every domain for each report. Computed once per row (the
/// subquery holding it is kept apart by `OFFSET 0`, so that its two uses do not hash twice).
const EVER_COMPLIANT: &str = "(EXISTS (SELECT FROM aggregate_rollup_source_totals t \
        WHERE t.policy_domain = s.policy_domain AND t.source_ip = s.source_ip AND t.dmarc_pass > 0) \
     OR EXISTS (SELECT FROM ONLY aggregate_rollup_sources a \
        WHERE a.policy_domain = s.policy_domain AND a.source_ip = s.source_ip AND a.dmarc_pass > 0))";

/// The source sums with what is known of each source and their messages split by class
/// (`sums`: how the period's rows are added up per source, see [`Sums`]).
fn classified(span: Span, filter: &RollupFilter, sums: Sums) -> String {
    format!(
        "SELECT s.*, i.ptr_name, i.ptr_base_domain, i.sender_name, i.sender_kind, i.country_code, \
                i.country_name, i.asn, i.as_org, \
                s.dmarc_pass AS compliant, \
                CASE WHEN i.sender_kind IN {FORWARDING_KINDS} THEN s.messages - s.dmarc_pass \
                     ELSE s.forwarded_reason + s.dkim_unaligned END AS forwarded, \
                CASE WHEN i.sender_kind IN {FORWARDING_KINDS} THEN 0 \
                     WHEN i.sender_name IS NOT NULL OR s.ever_compliant \
                     THEN s.messages - s.dmarc_pass - s.forwarded_reason - s.dkim_unaligned \
                     ELSE 0 END AS misconfigured, \
                CASE WHEN i.sender_kind IN {FORWARDING_KINDS} OR i.sender_name IS NOT NULL \
                          OR s.ever_compliant THEN 0 \
                     ELSE s.messages - s.dmarc_pass - s.forwarded_reason - s.dkim_unaligned END AS unknown \
         FROM (SELECT s.*, {EVER_COMPLIANT} AS ever_compliant FROM ({sums}) s OFFSET 0) s \
         LEFT JOIN source_ips i ON i.ip = s.source_ip",
        sums = source_sums(span, filter, sums),
    )
}

/// The sums of the four classes, as text, added up as `sums` says (`numeric` sums of
/// `bigint` or `numeric` classes; `bigint` sums of `bigint` classes only).
fn class_sums(sums: Sums) -> String {
    ["compliant", "forwarded", "misconfigured", "unknown"]
        .map(|class| format!("coalesce({}, 0)::text AS {class}", sums.sum(class)))
        .join(", ")
}

/// One row of `report --by class`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClassRow {
    pub class: String,
    pub messages: Count,
    /// Distinct source addresses with messages of the class.
    pub sources: i64,
}

/// Messages and sources per traffic class (every class, even without messages), in the order
/// of [`CLASSES`].
pub async fn classes(pool: &PgPool, filter: &RollupFilter) -> Result<Vec<ClassRow>, StoreError> {
    let sql = format!(
        "WITH c AS ({classified}) \
         SELECT n.class, coalesce(sum(k.messages) FILTER (WHERE k.messages > 0), 0)::text AS messages, \
                count(DISTINCT c.source_ip) FILTER (WHERE k.messages > 0) AS sources \
         FROM (VALUES {classes}) AS n (class, position) \
         LEFT JOIN (c CROSS JOIN LATERAL (VALUES ('compliant', c.compliant), ('forwarded', c.forwarded), \
                       ('misconfigured', c.misconfigured), ('unknown', c.unknown)) AS k (class, messages)) \
              ON k.class = n.class \
         GROUP BY n.class, n.position ORDER BY n.position",
        classified = classified(Span::Period, filter, Sums::Numeric),
        classes = CLASSES
            .iter()
            .enumerate()
            .map(|(index, class)| format!("('{class}', {index})"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    let mut tx = rollup::tuned(pool).await?;
    let rows: Vec<(String, Count, Option<i64>)> = fetch(&mut tx, sql, filter).await?;
    tx.commit().await?;
    Ok(rows
        .into_iter()
        .map(|(class, messages, sources)| ClassRow { class, messages, sources: sources.unwrap_or(0) })
        .collect())
}

/// Runs `sql` (formatted from constant expressions only) with the filter's parameters.
async fn fetch<O>(conn: &mut PgConnection, sql: String, filter: &RollupFilter) -> Result<Vec<O>, StoreError>
where
    O: for<'r> FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    Ok(filter.query_as(sql).fetch_all(conn).await?)
}

#[derive(FromRow)]
struct ClassSums {
    compliant: Count,
    forwarded: Count,
    misconfigured: Count,
    unknown: Count,
}

impl From<ClassSums> for ClassCounts {
    fn from(sums: ClassSums) -> Self {
        ClassCounts {
            compliant: sums.compliant.0,
            forwarded: sums.forwarded.0,
            misconfigured: sums.misconfigured.0,
            unknown: sums.unknown.0,
        }
    }
}

/// The first and last day with reports for the filter; `None` without reports.
async fn data_days(pool: &PgPool, filter: &RollupFilter) -> Result<Option<(NaiveDate, NaiveDate)>, StoreError> {
    let rows: Vec<(Option<NaiveDate>, Option<NaiveDate>)> = filter
        .fetch_all(
            pool,
            "SELECT min(day), max(day) FROM aggregate_rollup_daily \
             WHERE ($1::text IS NULL OR policy_domain = lower($1)) \
               AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)"
                .to_owned(),
        )
        .await?;
    Ok(match rows.first() {
        Some((Some(first), Some(last))) => Some((*first, *last)),
        _ => None,
    })
}

/// Everything the visual report shows, for the filter. The period is `since` to the day before
/// `until`; an open end is the first (or last) day with reports.
///
/// The period's sums per source and the classes are added up in `bigint`, and the whole report
/// again in `numeric` should a sum pass 64 bits (see [`Sums`]). The previous period's classes
/// and the classes of each day are added up on a connection of their own while the period is
/// classified on another (the pool of `report` has two).
pub async fn gather(pool: &PgPool, filter: &RollupFilter) -> Result<ReportData, StoreError> {
    with_sums(async |sums| gather_with(pool, filter, sums).await).await
}

async fn gather_with(pool: &PgPool, filter: &RollupFilter, sums: Sums) -> Result<ReportData, StoreError> {
    let mut data = ReportData {
        scope: filter.domain.as_ref().map_or_else(|| "all domains".to_owned(), |domain| domain.to_lowercase()),
        generated: Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        ..ReportData::default()
    };
    let data_days = data_days(pool, filter).await?;
    let first = filter.since.or(data_days.map(|days| days.0));
    let end = filter.until.or(data_days.map(|days| days.1 + Days::new(1)));
    let (Some(first), Some(end)) = (first, end) else {
        // Nothing reported and no period given: an empty report.
        data.current.failure_reports = figures::totals(pool, filter).await?.failure_reports.into();
        return Ok(data);
    };
    let length = (end - first).num_days().max(1) as u64;
    let previous_first = first - Days::new(length);
    let previous = RollupFilter { domain: filter.domain.clone(), since: Some(previous_first), until: Some(first) };
    let last = end - Days::new(1);
    data.first_day = Some(first.to_string());
    data.last_day = Some(last.to_string());
    data.previous_first_day = Some(previous_first.to_string());
    data.previous_last_day = Some((first - Days::new(1)).to_string());
    data.current = Totals::from(&figures::totals(pool, filter).await?);
    data.previous = Totals::from(&figures::totals(pool, &previous).await?);
    data.domains = figures::domains(pool, filter, TOP as u32).await?.into_iter().map(DomainStanding::from).collect();

    let ((previous_classes, days), ()) = tokio::try_join!(
        classes_by_day(pool, filter, &previous, (first, end), sums),
        period(pool, filter, sums, &mut data)
    )?;
    data.previous_classes = previous_classes;
    data.days = days;
    Ok(data)
}

/// The classes of the previous period (which has days: its rows are classified as they are),
/// and the period's classes per day, from `first` to the day before `end`.
async fn classes_by_day(
    pool: &PgPool,
    filter: &RollupFilter,
    previous: &RollupFilter,
    (first, end): (NaiveDate, NaiveDate),
    sums: Sums,
) -> Result<(ClassCounts, Vec<DayClasses>), StoreError> {
    let mut tx = rollup::tuned(pool).await?;
    let sql = format!("SELECT {} FROM ({}) c", class_sums(sums), classified(Span::Rows, previous, sums));
    let classes: Vec<ClassSums> = fetch(&mut tx, sql, previous).await?;
    let days = daily_classes(&mut tx, filter, first, end).await?;
    tx.commit().await?;
    Ok((classes.into_iter().next().map(Into::into).unwrap_or_default(), days))
}

/// The period's figures by class, source, result, reporter, host, sender and country, from
/// its sums per policy domain and source classified once (`report_classified`).
async fn period(pool: &PgPool, filter: &RollupFilter, sums: Sums, data: &mut ReportData) -> Result<(), StoreError> {
    let mut tx = rollup::tuned(pool).await?;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TEMPORARY TABLE report_classified ON COMMIT DROP AS {}",
        classified(Span::Period, filter, sums)
    )))
    .bind(&filter.domain)
    .bind(filter.since)
    .bind(filter.until)
    .execute(&mut *tx)
    .await?;
    let classes: Vec<ClassSums> =
        fetch(&mut tx, format!("SELECT {} FROM report_classified", class_sums(sums)), filter).await?;
    data.classes = classes.into_iter().next().map(Into::into).unwrap_or_default();
    data.sources = top_sources(&mut tx, filter).await?;
    data.services_to_align = services_to_align(&mut tx, filter).await?;
    data.unknown_sources = unknown_sources(&mut tx, filter).await?;
    let misconfigured: Vec<(String, Count)> = fetch(
        &mut tx,
        "SELECT policy_domain, sum(misconfigured)::text FROM report_classified \
         GROUP BY policy_domain HAVING sum(misconfigured) > 0 ORDER BY policy_domain"
            .to_owned(),
        filter,
    )
    .await?;
    data.misconfigured_by_domain = misconfigured.into_iter().map(|(domain, count)| (domain, count.0)).collect();
    data.results = results(&mut tx, filter).await?;
    data.details = details(&mut tx, filter).await?;
    data.orgs = orgs(&mut tx, filter).await?;
    data.forensic = forensic(&mut tx, filter).await?;
    // The sums per source (over its domains), which the groups add up.
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TEMPORARY TABLE report_sources ON COMMIT DROP AS \
         SELECT source_ip, min(ptr_base_domain) AS ptr_base_domain, min(sender_name) AS sender_name, \
                min(sender_kind) AS sender_kind, min(country_code) AS country_code, \
                min(country_name) AS country_name, {} \
         FROM report_classified GROUP BY source_ip",
        ["messages", "dmarc_pass", "dkim_aligned", "spf_aligned"]
            .map(|column| format!("{} AS {column}", sums.sum(column)))
            .join(", ")
    )))
    .execute(&mut *tx)
    .await?;
    data.hosts = groups(&mut tx, RollupKey::Host, filter, TOP).await?;
    data.senders = groups(&mut tx, RollupKey::Sender, filter, TOP).await?;
    // Every country, for the map.
    data.countries = groups(&mut tx, RollupKey::Country, filter, i64::MAX).await?;
    tx.commit().await?;
    Ok(())
}

/// Every day from `first` to the day before `end`, with its messages by class.
async fn daily_classes(
    conn: &mut PgConnection,
    filter: &RollupFilter,
    first: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<DayClasses>, StoreError> {
    let period = RollupFilter { domain: filter.domain.clone(), since: Some(first), until: Some(end) };
    #[derive(FromRow)]
    struct Day {
        day: NaiveDate,
        #[sqlx(flatten)]
        sums: ClassSums,
    }
    // Compliant messages are those passing DMARC, which the daily rollup counts; the rows per
    // day and source where every message passed add nothing to the other classes, and are
    // most rows (an index holds the others, which are classified as they are: see [`Span`]).
    let sql = format!(
        "SELECT day, {class_sums} FROM ( \
             SELECT day, messages AS compliant, 0 AS forwarded, 0 AS misconfigured, 0 AS unknown \
             FROM dmarc_daily WHERE {DAILY_FILTER} AND dmarc_result = 'pass' \
             UNION ALL \
             SELECT day, 0, forwarded, misconfigured, unknown FROM ({classified}) c \
         ) c GROUP BY day",
        class_sums = class_sums(Sums::Numeric),
        classified = classified(Span::FailingRows, &period, Sums::Numeric),
    );
    let rows: Vec<Day> = fetch(conn, sql, &period).await?;
    let mut by_day: std::collections::HashMap<NaiveDate, ClassCounts> =
        rows.into_iter().map(|row| (row.day, row.sums.into())).collect();
    Ok(first
        .iter_days()
        .take_while(|day| *day < end)
        .map(|day| DayClasses { day: day.to_string(), classes: by_day.remove(&day).unwrap_or_default() })
        .collect())
}

async fn top_sources(conn: &mut PgConnection, filter: &RollupFilter) -> Result<Vec<SourceRow>, StoreError> {
    #[derive(FromRow)]
    struct Row {
        ip: Option<String>,
        host: Option<String>,
        sender: Option<String>,
        sender_kind: Option<String>,
        country_code: Option<String>,
        asn: Option<i64>,
        as_org: Option<String>,
        messages: Count,
        dmarc_pass: Count,
        dkim_aligned: Count,
        spf_aligned: Count,
        #[sqlx(flatten)]
        sums: ClassSums,
    }
    let rows: Vec<Row> = fetch(
        conn,
        format!(
            // The top sources first, by their messages alone; then all their sums.
            "WITH top AS ( \
                 SELECT source_ip FROM report_classified GROUP BY source_ip \
                 ORDER BY sum(messages) DESC, source_ip LIMIT {TOP} \
             ) \
             SELECT host(source_ip) AS ip, min(ptr_name) AS host, min(sender_name) AS sender, \
                    min(sender_kind) AS sender_kind, min(country_code) AS country_code, min(asn) AS asn, \
                    min(as_org) AS as_org, sum(messages)::text AS messages, sum(dmarc_pass)::text AS dmarc_pass, \
                    sum(dkim_aligned)::text AS dkim_aligned, sum(spf_aligned)::text AS spf_aligned, {class_sums} \
             FROM report_classified \
             WHERE source_ip IN (SELECT source_ip FROM top) \
                OR (source_ip IS NULL AND EXISTS (SELECT FROM top WHERE source_ip IS NULL)) \
             GROUP BY source_ip ORDER BY sum(messages) DESC, source_ip",
            class_sums = class_sums(Sums::Numeric),
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| SourceRow {
            ip: row.ip,
            host: row.host,
            sender: row.sender,
            sender_kind: row.sender_kind,
            country_code: row.country_code,
            asn: row.asn,
            as_org: row.as_org,
            messages: row.messages.0,
            dmarc_pass: row.dmarc_pass.0,
            dkim_aligned: row.dkim_aligned.0,
            spf_aligned: row.spf_aligned.0,
            classes: row.sums.into(),
        })
        .collect())
}

/// Misconfigured messages per domain and service (the known sender, else the source's host
/// domain, else its address), most first.
async fn services_to_align(conn: &mut PgConnection, filter: &RollupFilter) -> Result<Vec<ServiceFix>, StoreError> {
    let rows: Vec<(String, String, Count, Count, Count, Count, i64)> = fetch(
        conn,
        format!(
            "SELECT policy_domain, coalesce(sender_name, ptr_base_domain, host(source_ip), 'no address'), \
                    sum(misconfigured)::text, sum(messages)::text, sum(dkim_aligned)::text, \
                    sum(spf_aligned)::text, count(*) \
             FROM report_classified WHERE misconfigured > 0 GROUP BY 1, 2 \
             ORDER BY sum(misconfigured) DESC, 1, 2 LIMIT {TOP}"
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(domain, service, failing, messages, dkim, spf, sources)| ServiceFix {
            domain,
            service,
            failing: failing.0,
            messages: messages.0,
            dkim_aligned: dkim.0,
            spf_aligned: spf.0,
            sources,
        })
        .collect())
}

async fn unknown_sources(conn: &mut PgConnection, filter: &RollupFilter) -> Result<Vec<UnknownSource>, StoreError> {
    #[derive(FromRow)]
    struct Row {
        policy_domain: String,
        ip: Option<String>,
        ptr_name: Option<String>,
        country_code: Option<String>,
        asn: Option<i64>,
        as_org: Option<String>,
        messages: Count,
    }
    let rows: Vec<Row> = fetch(
        conn,
        format!(
            "SELECT policy_domain, host(source_ip) AS ip, ptr_name, country_code, asn, as_org, unknown::text AS messages \
             FROM report_classified WHERE unknown > 0 ORDER BY unknown DESC, policy_domain, source_ip LIMIT {TOP}"
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| UnknownSource {
            domain: row.policy_domain,
            ip: row.ip,
            host: row.ptr_name,
            country_code: row.country_code,
            asn: row.asn,
            as_org: row.as_org,
            messages: row.messages.0,
        })
        .collect())
}

const DAILY_FILTER: &str = "($1::text IS NULL OR policy_domain = lower($1)) \
    AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day < $3)";

async fn results(conn: &mut PgConnection, filter: &RollupFilter) -> Result<Vec<ResultRow>, StoreError> {
    let rows: Vec<(String, String, Count)> = fetch(
        conn,
        format!(
            "SELECT coalesce(dmarc_result, 'unknown'), coalesce(disposition, 'unknown'), sum(messages)::text \
             FROM dmarc_daily WHERE {DAILY_FILTER} GROUP BY 1, 2 ORDER BY sum(messages) DESC, 1, 2"
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(result, disposition, messages)| ResultRow { result, disposition, messages: messages.0 })
        .collect())
}

async fn details(conn: &mut PgConnection, filter: &RollupFilter) -> Result<Vec<DetailRow>, StoreError> {
    let rows: Vec<(String, String, String, String, String, Count)> = fetch(
        conn,
        format!(
            "SELECT policy_domain, coalesce(dmarc_result, 'unknown'), coalesce(disposition, 'unknown'), \
                    coalesce(dkim_aligned, 'unknown'), coalesce(spf_aligned, 'unknown'), sum(messages)::text \
             FROM dmarc_daily WHERE {DAILY_FILTER} GROUP BY 1, 2, 3, 4, 5 \
             ORDER BY 1, sum(messages) DESC, 2, 3, 4, 5 LIMIT {limit}",
            limit = TOP * 8
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(domain, result, disposition, dkim_aligned, spf_aligned, messages)| DetailRow {
            domain,
            result,
            disposition,
            dkim_aligned,
            spf_aligned,
            messages: messages.0,
        })
        .collect())
}

/// A reporter's row: name, messages, DMARC pass, aligned DKIM and SPF, reports, last day.
type OrgRow = (String, Count, Count, Count, Count, Option<i64>, Option<String>);

/// Per reporter: messages and results (daily rollup), reports and the last report's day.
async fn orgs(conn: &mut PgConnection, filter: &RollupFilter) -> Result<Vec<GroupRow>, StoreError> {
    let rows: Vec<OrgRow> = fetch(
        conn,
        format!(
            "SELECT d.org_name, sum(d.messages)::text, \
                    coalesce(sum(d.messages) FILTER (WHERE d.dmarc_result = 'pass'), 0)::text, \
                    coalesce(sum(d.messages) FILTER (WHERE d.dkim_aligned = 'pass'), 0)::text, \
                    coalesce(sum(d.messages) FILTER (WHERE d.spf_aligned = 'pass'), 0)::text, \
                    r.reports, r.last_day \
             FROM dmarc_daily d \
             LEFT JOIN ( \
                 SELECT org_name, count(*) AS reports, \
                        to_char(max(date_end AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS last_day \
                 FROM aggregate_reports \
                 WHERE ($1::text IS NULL OR policy_domain = lower($1)) \
                   AND ($2::date IS NULL OR date_begin >= $2::date::timestamp AT TIME ZONE 'UTC') \
                   AND ($3::date IS NULL OR date_begin < $3::date::timestamp AT TIME ZONE 'UTC') \
                 GROUP BY org_name \
             ) r ON r.org_name = d.org_name \
             WHERE ($1::text IS NULL OR d.policy_domain = lower($1)) \
               AND ($2::date IS NULL OR d.day >= $2) AND ($3::date IS NULL OR d.day < $3) \
             GROUP BY d.org_name, r.reports, r.last_day ORDER BY sum(d.messages) DESC, d.org_name LIMIT {TOP}"
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(org, messages, pass, dkim, spf, reports, last_day)| GroupRow {
            key: Some(org),
            detail: last_day,
            messages: messages.0,
            dmarc_pass: pass.0,
            dkim_aligned: dkim.0,
            spf_aligned: spf.0,
            count: reports.unwrap_or(0),
            failing: messages.0 - pass.0,
        })
        .collect())
}

/// Failure reports per reported domain, Auth-Failure and source, clear metadata only.
async fn forensic(conn: &mut PgConnection, filter: &RollupFilter) -> Result<Vec<ForensicRow>, StoreError> {
    // Domain, Auth-Failure, source, reports, last arrival.
    type Row = (Option<String>, Option<String>, Option<String>, i64, Option<String>);
    let rows: Vec<Row> = fetch(
        conn,
        format!(
            "SELECT reported_domains[1], coalesce(auth_failure, feedback_type), host(source_ip), count(*), \
                    to_char(max(coalesce(arrival_date, received_at)) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') \
             FROM forensic_reports WHERE {filter} GROUP BY 1, 2, 3 ORDER BY count(*) DESC, 5 DESC, 1, 2, 3 LIMIT {TOP}",
            filter = crate::forensic::COUNT_FILTER,
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|(domain, auth_failure, source, reports, last)| ForensicRow {
            domain,
            auth_failure,
            source,
            reports,
            last,
        })
        .collect())
}

/// The period's messages by host, sending service or country, from `report_sources` (the same
/// figures as `rollup::query` by that key), most messages first, at most `limit` rows, each
/// with its first detail (the sender's kind, the country's name).
async fn groups(
    conn: &mut PgConnection,
    key: RollupKey,
    filter: &RollupFilter,
    limit: i64,
) -> Result<Vec<GroupRow>, StoreError> {
    // The key and details as the rollup by that key has them, over `report_sources` (which has
    // the columns of `source_ips` they read, hence its name `i`).
    let (key_expression, details) = match key {
        RollupKey::Host | RollupKey::Sender | RollupKey::Country => key.source_expressions(),
        _ => None,
    }
    .map(|(key, _, details)| (key, details))
    .ok_or_else(|| StoreError::Data(format!("the report has no groups by {}", key.name())))?;
    #[derive(FromRow)]
    struct Group {
        key: Option<String>,
        details: Vec<Option<String>>,
        messages: Count,
        dmarc_pass: Count,
        dkim_aligned: Count,
        spf_aligned: Count,
        sources: i64,
    }
    let rows: Vec<Group> = fetch(
        conn,
        format!(
            "SELECT {key_expression} AS key, {details} AS details, sum(messages)::text AS messages, \
                    sum(dmarc_pass)::text AS dmarc_pass, sum(dkim_aligned)::text AS dkim_aligned, \
                    sum(spf_aligned)::text AS spf_aligned, count(source_ip) AS sources \
             FROM report_sources i GROUP BY 1 ORDER BY sum(messages) DESC, 1 LIMIT {limit}"
        ),
        filter,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| GroupRow {
            key: row.key.filter(|key| key != "unknown"),
            detail: row.details.into_iter().next().flatten(),
            messages: row.messages.0,
            dmarc_pass: row.dmarc_pass.0,
            dkim_aligned: row.dkim_aligned.0,
            spf_aligned: row.spf_aligned.0,
            count: row.sources,
            failing: row.messages.0 - row.dmarc_pass.0,
        })
        .collect())
}
