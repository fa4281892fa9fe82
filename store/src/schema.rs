//! The schema check every command makes when it connects, in one round trip.
//!
//! sqlx's migrator, run on every start, takes an advisory lock, creates its table if missing,
//! looks for a failed migration, lists the applied ones and unlocks: five statements before the
//! first input. Instead one simple query reads the applied migrations (version, success,
//! checksum) and, in the same round trip, the record partitions that exist, so that inputs of
//! those months need no connection of their own to create one. The migrator runs only when the
//! database lacks a migration that this build embeds (a new database, or an upgrade).
//!
//! A database that differs from this build (a migration it does not know, made by a newer
//! dmarcpipe; a checksum that differs; a migration that failed half-way) is refused with
//! [`StoreError::Schema`], which says which migration and what to do.

use sqlx::Row;
use sqlx::migrate::Migrator;

use crate::error::StoreError;

/// Applied migrations and record partitions, as text, in one simple-protocol query (one round
/// trip, no statement to prepare). Fails with `undefined_table` on a database never migrated.
const CHECK: &str = "SELECT \
    (SELECT string_agg(version || ' ' || success || ' ' || encode(checksum, 'hex'), ',' ORDER BY version) \
       FROM _sqlx_migrations), \
    (SELECT string_agg(c.relname, ',') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
      WHERE i.inhparent = to_regclass('aggregate_records'))";

/// One row of `_sqlx_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    pub version: i64,
    pub success: bool,
    pub checksum: Vec<u8>,
}

/// What the check found.
#[derive(Debug, Default)]
pub(crate) struct Found {
    /// `None` when the database has no migrations table yet.
    pub applied: Option<Vec<Applied>>,
    /// Months (year * 12 + month0) whose record partition exists.
    pub partition_months: Vec<i32>,
}

/// What to do about the schema.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every embedded migration is applied, unchanged, and nothing else.
    Current,
    /// Some embedded migrations are not applied yet: run the migrator.
    Pending,
}

/// Runs the check on `conn`.
pub(crate) async fn check(conn: &mut sqlx::PgConnection) -> Result<Found, StoreError> {
    let row = match sqlx::raw_sql(CHECK).fetch_one(&mut *conn).await {
        Ok(row) => row,
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42P01") => return Ok(Found::default()),
        Err(err) => return Err(err.into()),
    };
    let migrations: Option<String> = row.try_get(0)?;
    let partitions: Option<String> = row.try_get(1)?;
    Ok(Found {
        applied: Some(parse_applied(migrations.as_deref().unwrap_or_default())?),
        partition_months: partitions.as_deref().map_or_else(Vec::new, partition_months),
    })
}

/// `version success checksum-hex` items separated by commas, as [`CHECK`] writes them.
fn parse_applied(text: &str) -> Result<Vec<Applied>, StoreError> {
    text.split(',')
        .filter(|item| !item.is_empty())
        .map(|item| {
            let unexpected = || StoreError::Data(format!("migration row {item:?} in _sqlx_migrations"));
            let mut fields = item.split(' ');
            let version = fields.next().and_then(|v| v.parse().ok()).ok_or_else(unexpected)?;
            let success = match fields.next() {
                Some("true") => true,
                Some("false") => false,
                _ => return Err(unexpected()),
            };
            let checksum = fields.next().and_then(hex).ok_or_else(unexpected)?;
            Ok(Applied { version, success, checksum })
        })
        .collect()
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|at| u8::from_str_radix(text.get(at..at + 2)?, 16).ok()).collect()
}

/// Months of partitions named `aggregate_records_YYYY_MM` (as `dmarcpipe_ensure_record_partition`
/// names them); other names are ignored (the function is asked for those months as before).
fn partition_months(names: &str) -> Vec<i32> {
    names
        .split(',')
        .filter_map(|name| {
            let (year, month) = name.strip_prefix("aggregate_records_")?.split_once('_')?;
            let (year, month): (i32, i32) = (year.parse().ok()?, month.parse().ok()?);
            (1..=12).contains(&month).then_some(year * 12 + month - 1)
        })
        .collect()
}

/// Compares what the database applied with what `migrator` embeds.
pub(crate) fn judge(migrator: &Migrator, applied: &[Applied]) -> Result<Verdict, StoreError> {
    let embedded: Vec<_> = migrator.iter().filter(|m| !m.migration_type.is_down_migration()).collect();
    for row in applied {
        if !row.success {
            return Err(StoreError::Schema(format!(
                "migration {} failed part-way in an earlier run and is marked unfinished in _sqlx_migrations; \
                 repair the database by hand (see migrations/README.md), then run `dmarcpipe migrate`",
                row.version
            )));
        }
        match embedded.iter().find(|m| m.version == row.version) {
            None => {
                return Err(StoreError::Schema(format!(
                    "the database has migration {}, which this dmarcpipe does not know: it was upgraded by a newer \
                     dmarcpipe; run that version (or newer)",
                    row.version
                )));
            }
            Some(m) if *m.checksum != row.checksum[..] => {
                return Err(StoreError::Schema(format!(
                    "migration {} ({}) in the database differs from this dmarcpipe's: the database was made by a \
                     different build; run the dmarcpipe that made it",
                    row.version, m.description
                )));
            }
            Some(_) => {}
        }
    }
    Ok(if embedded.len() == applied.len() { Verdict::Current } else { Verdict::Pending })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MIGRATOR;

    fn all_applied() -> Vec<Applied> {
        MIGRATOR.iter().map(|m| Applied { version: m.version, success: true, checksum: m.checksum.to_vec() }).collect()
    }

    #[test]
    fn the_check_reads_its_own_text() -> Result<(), StoreError> {
        let applied = parse_applied("20261128000001 true 00ff10,20261128000002 false ab")?;
        assert_eq!(
            applied,
            vec![
                Applied { version: 20261128000001, success: true, checksum: vec![0, 255, 16] },
                Applied { version: 20261128000002, success: false, checksum: vec![0xab] },
            ]
        );
        assert!(parse_applied("")?.is_empty());
        for bad in ["x true 00", "1 maybe 00", "1 true 0", "1 true zz", "1 true"] {
            assert!(matches!(parse_applied(bad), Err(StoreError::Data(_))), "{bad}");
        }
        assert_eq!(
            partition_months("aggregate_records_2026_10,aggregate_records_2027_01,other,aggregate_records_2026_13"),
            vec![2026 * 12 + 9, 2027 * 12]
        );
        Ok(())
    }

    #[test]
    fn an_up_to_date_database_needs_no_migrator() -> Result<(), StoreError> {
        assert_eq!(judge(&MIGRATOR, &all_applied())?, Verdict::Current);
        let mut older = all_applied();
        older.pop();
        assert_eq!(judge(&MIGRATOR, &older)?, Verdict::Pending);
        assert_eq!(judge(&MIGRATOR, &[])?, Verdict::Pending);
        Ok(())
    }

    #[test]
    fn a_newer_changed_or_broken_database_is_refused_with_the_migration_named() {
        let mut newer = all_applied();
        newer.push(Applied { version: 99991231000000, success: true, checksum: vec![1] });
        let err = judge(&MIGRATOR, &newer).map(|_| ()).err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.contains("99991231000000") && err.contains("newer dmarcpipe"), "{err}");

        let mut changed = all_applied();
        changed[0].checksum[0] ^= 1;
        let err = judge(&MIGRATOR, &changed).map(|_| ()).err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.contains(&changed[0].version.to_string()) && err.contains("differs"), "{err}");

        let mut failed = all_applied();
        failed[1].success = false;
        let err = judge(&MIGRATOR, &failed).map(|_| ()).err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.contains(&failed[1].version.to_string()) && err.contains("unfinished"), "{err}");
    }
}
