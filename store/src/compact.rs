//! Compaction of the rollups: the rows the store appends with each report
//! (`aggregate_rollup_daily`, `aggregate_rollup_sources`) merged into one row per key, so that
//! the rollup queries add up a row per day and key, or per source over all days, instead of a
//! row per report (see `migrations/20261201150001_create_rollup_compaction.sql`).
//!
//! One compaction is one transaction under an advisory lock (a second compactor at the same
//! time skips its turn): it deletes the appended rows it sees, and adds their sums to every
//! level (the compacted children of the two tables, the source totals per policy domain, per
//! source over every domain, see `migrations/20261202050001_create_rollup_source_ip_totals.sql`,
//! and per week and source, see `migrations/20261202190001_create_rollup_source_weeks.sql`).
//! Rows appended by loads that commit meanwhile are not seen, and wait for the next
//! compaction; queries read the appended rows and the compacted ones together, so they are
//! exact at every moment. A level's key may be an expression of the appended rows' columns
//! (the week of their day).
//!
//! Every column of a level that is not part of its key is a sum, found in the catalog, so a
//! column added to an append-only table (and so to its compacted child) is summed too. A sum
//! that would pass 2<sup>63</sup> (possible only with millions of reports of the largest
//! counts on the same key) cannot be stored in a level: the rows of such keys are put back,
//! stay appended, and are summed as numbers by the queries as before.

use sqlx::{AssertSqlSafe, Connection, PgConnection, PgPool, Postgres, Transaction};

use crate::error::StoreError;
use crate::rollup::Sums;

/// A level that appended rows are merged into.
struct Level {
    table: &'static str,
    /// The key.
    keys: &'static [Key],
    /// Columns merged otherwise than by summing: (column, its value over appended rows, its
    /// merge with the existing row `l` and the new one `excluded`).
    merged: &'static [(&'static str, &'static str, &'static str)],
}

/// A column of a level's key, and its value for an appended row: most often the column of the
/// same name, or an expression of the appended row's other columns (unqualified, so none of
/// them may be named like a key column of the level).
struct Key {
    column: &'static str,
    value: &'static str,
}

impl Key {
    /// A key column that the appended rows have too.
    const fn column(name: &'static str) -> Key {
        Key { column: name, value: name }
    }

    /// The key's value for the appended row named `row`.
    fn of_row(&self, row: &str) -> String {
        if self.value == self.column { format!("{row}.{}", self.column) } else { self.value.to_owned() }
    }
}

/// The keys of plain columns.
macro_rules! keys {
    ($($column:literal),*) => { &[$(Key::column($column)),*] };
}

/// An append-only table and its levels.
struct Family {
    appended: &'static str,
    /// The temporary table holding the rows taken (dropped at commit).
    taken: &'static str,
    levels: &'static [Level],
}

/// The first and last day of a level over all days.
const DAY_SPAN: &[(&str, &str, &str)] = &[
    ("first_day", "min(day)", "least(l.first_day, excluded.first_day)"),
    ("last_day", "max(day)", "greatest(l.last_day, excluded.last_day)"),
];

const FAMILIES: [Family; 2] = [
    Family {
        appended: "aggregate_rollup_daily",
        taken: "compacting_rollup_daily",
        levels: &[Level {
            table: "aggregate_rollup_daily_compacted",
            keys: keys!["day", "policy_domain", "org_name", "disposition", "dkim_aligned", "spf_aligned"],
            merged: &[],
        }],
    },
    Family {
        appended: "aggregate_rollup_sources",
        taken: "compacting_rollup_sources",
        levels: &[
            Level {
                table: "aggregate_rollup_sources_compacted",
                keys: keys!["day", "policy_domain", "source_ip"],
                merged: &[],
            },
            Level {
                table: "aggregate_rollup_source_totals",
                keys: keys!["policy_domain", "source_ip"],
                merged: DAY_SPAN,
            },
            Level { table: "aggregate_rollup_source_ip_totals", keys: keys!["source_ip"], merged: DAY_SPAN },
            // Weeks begin on Monday (see migration 20261202190001).
            Level {
                table: "aggregate_rollup_source_weeks",
                keys: &[
                    Key { column: "week", value: "date_trunc('week', day::timestamp)::date" },
                    Key::column("source_ip"),
                ],
                merged: &[],
            },
        ],
    },
];

/// Rows appended since the last compaction beyond which `report` compacts before querying.
pub const DUE_ROWS: i64 = 2_000;

/// Rows compacted at once beyond which the levels are analyzed at once (autovacuum does it
/// in time otherwise).
const REANALYZE_ROWS: u64 = 100_000;

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Appended rows merged into the levels.
    pub rows: u64,
    /// Appended rows left as they were: their key's sums would not fit in 64 bits.
    pub held_back: u64,
}

/// How many rows wait for compaction, counted up to `cap`.
pub async fn pending(pool: &PgPool, cap: i64) -> Result<i64, StoreError> {
    let count = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM (SELECT 1 FROM ONLY aggregate_rollup_daily LIMIT $1) d) \
              + (SELECT count(*) FROM (SELECT 1 FROM ONLY aggregate_rollup_sources LIMIT $1) s)",
    )
    .bind(cap)
    .fetch_one(pool)
    .await?;
    Ok(count)
}

/// Compacts when at least [`DUE_ROWS`] rows wait; `None` when nothing was done (too few rows,
/// or another compaction is running).
pub async fn compact_if_due(pool: &PgPool) -> Result<Option<Compacted>, StoreError> {
    if pending(pool, DUE_ROWS).await? < DUE_ROWS {
        return Ok(None);
    }
    compact(pool).await
}

/// Merges every appended rollup row into the levels; `None` if another compaction holds the
/// lock (its rows are then being merged).
pub async fn compact(pool: &PgPool) -> Result<Option<Compacted>, StoreError> {
    let mut tx = pool.begin().await?;
    let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('dmarcpipe_compact_rollups'))")
        .fetch_one(&mut *tx)
        .await?;
    if !locked {
        return Ok(None);
    }
    // Large first compactions sort and hash millions of rows.
    sqlx::query("SET LOCAL work_mem = '256MB'").execute(&mut *tx).await?;
    let mut done = Compacted::default();
    for family in &FAMILIES {
        let taken = sqlx::query(AssertSqlSafe(format!(
            "CREATE TEMPORARY TABLE {taken} ON COMMIT DROP AS \
             WITH taken AS (DELETE FROM ONLY {appended} RETURNING *) SELECT * FROM taken",
            taken = family.taken,
            appended = family.appended,
        )))
        .persistent(false)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if taken == 0 {
            continue;
        }
        sqlx::query(AssertSqlSafe(format!("ANALYZE {}", family.taken))).persistent(false).execute(&mut *tx).await?;
        let mut held_back = 0;
        // At most twice: the second time without the keys that overflowed.
        for attempt in 0..2 {
            let mut savepoint = Connection::begin(&mut *tx).await?;
            match merge(&mut savepoint, family).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    break;
                }
                Err(err) if attempt == 0 && err.is_out_of_range() => {
                    savepoint.rollback().await?;
                    held_back = hold_back(&mut tx, family).await?;
                }
                Err(err) => return Err(err),
            }
        }
        done.rows += taken - held_back;
        done.held_back += held_back;
    }
    tx.commit().await?;
    // The taken rows are dead in the append-only tables until vacuumed, and the planner's
    // counts of every table are stale: the next query would scan the dead rows and plan for
    // the old counts (badly: nested loops over millions of estimated rows). The compacted rows
    // per source are vacuumed too, so that their pages are known to be visible and the index of
    // the failing rows is read alone (see migration 20261202050001).
    let mut tables: Vec<&str> = FAMILIES.iter().map(|family| family.appended).collect();
    tables.push("aggregate_rollup_sources_compacted");
    sqlx::query(AssertSqlSafe(format!("VACUUM (ANALYZE) {}", tables.join(", "))))
        .persistent(false)
        .execute(pool)
        .await?;
    if done.rows >= REANALYZE_ROWS {
        tables = FAMILIES.iter().flat_map(|family| family.levels.iter().map(|level| level.table)).collect();
        sqlx::query(AssertSqlSafe(format!("ANALYZE {}", tables.join(", ")))).persistent(false).execute(pool).await?;
    }
    Ok(Some(done))
}

/// Adds the taken rows of `family` to each of its levels.
async fn merge(tx: &mut Transaction<'_, Postgres>, family: &Family) -> Result<(), StoreError> {
    for level in family.levels {
        let sums = summed_columns(tx, level).await?;
        let keys = level.key_columns().join(", ");
        let mut columns: Vec<&str> = level.key_columns();
        let mut values: Vec<String> = level.keys.iter().map(|key| key.value.to_owned()).collect();
        let mut updates: Vec<String> = Vec::new();
        for (column, value, merge) in level.merged {
            columns.push(column);
            values.push((*value).to_owned());
            updates.push(format!("{column} = {merge}"));
        }
        for column in &sums {
            columns.push(column);
            // In 64 bits: a sum past them fails (SQLSTATE 22003) as the merge would.
            values.push(Sums::Bigint.sum(column));
            updates.push(format!("{column} = l.{column} + excluded.{column}"));
        }
        // In the order of the key (the day first), so that the rows of a period lie together
        // on disk: a month's rollup then reads a twelfth of a year's pages, not nearly all.
        let positions = (1..=level.keys.len()).map(|position| position.to_string()).collect::<Vec<_>>().join(", ");
        let sql = format!(
            "INSERT INTO {table} AS l ({columns}) SELECT {values} FROM {taken} GROUP BY {positions} \
             ORDER BY {positions} ON CONFLICT ({keys}) DO UPDATE SET {updates}",
            table = level.table,
            columns = columns.join(", "),
            values = values.join(", "),
            taken = family.taken,
            updates = updates.join(", "),
        );
        // Names from the constants above and from the catalog (checked by summed_columns).
        sqlx::query(AssertSqlSafe(sql)).persistent(false).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Puts back the taken rows of keys whose sums, with what a level holds, would not fit in 64
/// bits; returns how many.
async fn hold_back(tx: &mut Transaction<'_, Postgres>, family: &Family) -> Result<u64, StoreError> {
    let mut held = 0;
    for level in family.levels {
        let sums = summed_columns(tx, level).await?;
        let keys = level.key_columns().join(", ");
        let values = level.keys.iter().map(|key| format!("{} AS {}", key.value, key.column)).collect::<Vec<_>>();
        let over = sums.iter().map(|column| format!("sum({column}) > 9223372036854775807")).collect::<Vec<_>>();
        let same_key = level
            .keys
            .iter()
            .map(|key| format!("{} IS NOT DISTINCT FROM o.{}", key.of_row("t"), key.column))
            .collect::<Vec<_>>();
        let sql = format!(
            "WITH overflowing AS ( \
                 SELECT {keys} FROM ( \
                     SELECT {values}, {sums}, true AS taken FROM {taken} \
                     UNION ALL SELECT {keys}, {sums}, false FROM {table} \
                 ) u GROUP BY {keys} HAVING bool_or(taken) AND ({over}) \
             ), held AS ( \
                 DELETE FROM {taken} t USING overflowing o WHERE {same_key} RETURNING t.* \
             ) \
             INSERT INTO {appended} SELECT * FROM held",
            values = values.join(", "),
            sums = sums.join(", "),
            taken = family.taken,
            table = level.table,
            over = if over.is_empty() { "false".to_owned() } else { over.join(" OR ") },
            same_key = same_key.join(" AND "),
            appended = family.appended,
        );
        held += sqlx::query(AssertSqlSafe(sql)).persistent(false).execute(&mut **tx).await?.rows_affected();
    }
    Ok(held)
}

impl Level {
    /// The names of the key's columns.
    fn key_columns(&self) -> Vec<&'static str> {
        self.keys.iter().map(|key| key.column).collect()
    }
}

/// The summed columns of a level: all but its key and merged columns, from the catalog.
async fn summed_columns(conn: &mut PgConnection, level: &Level) -> Result<Vec<String>, StoreError> {
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped \
         ORDER BY attnum",
    )
    .bind(level.table)
    .fetch_all(conn)
    .await?;
    let mut sums = Vec::new();
    for column in columns {
        if level.keys.iter().any(|key| key.column == column)
            || level.merged.iter().any(|(merged, ..)| *merged == column)
        {
            continue;
        }
        // Formatted into statements: only plain lower-case names.
        if column.is_empty() || !column.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return Err(StoreError::Data(format!("{}: column `{column}` is not a plain name", level.table)));
        }
        sums.push(column);
    }
    Ok(sums)
}
