//! Migrations are append-only: a landed migration never changes (deployed databases check their
//! checksums), and a database made by any landed version upgrades to the newest schema.

use std::path::{Path, PathBuf};

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::testkit::ReportBuilder;
use dmarcpipe_store::{MIGRATOR, Outcome, Store};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// The last migration of the first version that landed: the schema a deployed database may
/// still have.
const FIRST_LANDED: i64 = 20261128000005;

fn migrations() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations")
}

/// File name and SHA-256 of every migration: those of the first versions in
/// `migrations/landed.sha256` (a list closed since), each later one in a file of its own,
/// `migrations/checksums/NAME.sql.sha256`, written once with the migration (see
/// `migrations/checksums/README.md`). Both are in `sha256sum` format, so no checksum file is
/// ever edited.
fn landed() -> Vec<(String, String)> {
    let mut files = vec![migrations().join("landed.sha256")];
    let mut own: Vec<PathBuf> = std::fs::read_dir(migrations().join("checksums"))
        .expect("migrations/checksums/ is readable")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "sha256"))
        .collect();
    own.sort();
    files.extend(own);
    files
        .iter()
        .flat_map(|file| {
            let text = std::fs::read_to_string(file).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
            text.lines()
                .filter(|line| !line.trim().is_empty())
                .map(|line| {
                    let (hash, name) = line.split_once("  ").expect("`HASH  FILE` lines, as sha256sum writes them");
                    (name.to_owned(), hash.to_owned())
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn landed_migrations_never_change() {
    let landed = landed();
    for (name, hash) in &landed {
        let text = std::fs::read(migrations().join(name)).unwrap_or_else(|err| panic!("{name} is gone: {err}"));
        let actual: String = Sha256::digest(&text).iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            &actual, hash,
            "{name} changed after it landed: fix the schema with a new migration instead (migrations/README.md)"
        );
    }
    let mut files: Vec<String> = std::fs::read_dir(migrations())
        .expect("migrations/ is readable")
        .map(|entry| entry.expect("an entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    files.sort();
    let listed: Vec<&String> = landed.iter().map(|(name, _)| name).collect();
    let mut distinct = listed.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), listed.len(), "a migration has two checksums");
    for file in &files {
        assert!(
            listed.contains(&file),
            "{file} has no checksum: add migrations/checksums/{file}.sha256 (cd migrations; sha256sum {file} > checksums/{file}.sha256)"
        );
    }
    // Every file sqlx embeds is one of them.
    assert_eq!(MIGRATOR.iter().count(), files.len());
}

#[sqlx::test(migrations = false)]
async fn a_database_of_the_first_landed_version_upgrades_with_its_data(pool: PgPool) {
    MIGRATOR.run_to(FIRST_LANDED, &pool).await.expect("the first landed schema");
    // Data as that version wrote it: an input with a report of two records, still queued for
    // its rollups, and a failure report.
    for statement in [
        "INSERT INTO inputs (channel, origin, sha256, size, received_at, outcome, reports_stored, records, messages) \
         VALUES ('file', 'old.xml', decode(repeat('ab', 32), 'hex'), 1000, '2026-11-20', 'stored', 1, 2, 30)",
        "SELECT dmarcpipe_ensure_record_partition('2026-11-20T00:00:00Z')",
        "INSERT INTO aggregate_reports (input, org_name, report_id, policy_domain, date_begin, date_end, schema, \
             record_count, message_count, received_at) \
         VALUES (1, 'old.example', 'r-1', 'example.com', '2026-11-20T00:00:00Z', '2026-11-20T23:59:59Z', 'rfc7489', \
             2, 30, '2026-11-21')",
        "INSERT INTO aggregate_records (report, record_no, date_begin, source_ip, message_count, disposition, \
             dkim_aligned, spf_aligned, dkim_count, spf_count) \
         VALUES (1, 1, '2026-11-20T00:00:00Z', '192.0.2.1', 10, 'none', 'pass', 'fail', 0, 0), \
                (1, 2, '2026-11-20T00:00:00Z', '192.0.2.2', 20, 'reject', 'fail', 'fail', 0, 0)",
        "INSERT INTO aggregate_rollup_queue (report) VALUES (1)",
        "INSERT INTO forensic_reports (input, fingerprint, received_at, format, feedback_type, auth_failure) \
         VALUES (1, decode(repeat('cd', 32), 'hex'), '2026-11-21', 'arf', 'auth-failure', 'dmarc')",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap_or_else(|err| panic!("{statement}: {err}"));
    }

    MIGRATOR.run(&pool).await.expect("upgrades to the newest schema");

    // The queued report was rolled up on the way, and the views read the old rows.
    let (messages, pass, fail): (i64, i64, i64) = sqlx::query_as(
        "SELECT sum(messages)::bigint, sum(dmarc_pass)::bigint, sum(dmarc_fail)::bigint FROM dmarc_daily_sources",
    )
    .fetch_one(&pool)
    .await
    .expect("rollups");
    assert_eq!((messages, pass, fail), (30, 10, 20));
    let results: Vec<Option<String>> = sqlx::query_scalar("SELECT dmarc_result FROM dmarc_records ORDER BY record_no")
        .fetch_all(&pool)
        .await
        .expect("records");
    assert_eq!(results, [Some("pass".to_owned()), Some("fail".to_owned())]);
    let forensic: i64 = sqlx::query_scalar("SELECT count(*) FROM dmarc_forensic").fetch_one(&pool).await.expect("view");
    assert_eq!(forensic, 1);

    // The store of this version goes on from there: the same report again is a duplicate of the
    // old input, a new one is stored beside it.
    let store = Store::from_pool(pool.clone());
    let begin = 1_795_132_800; // 2026-11-20T00:00:00Z
    let again =
        ReportBuilder::new("old.example", "r-1", "example.com", begin).record("192.0.2.1", 10, "none", "pass", "fail");
    let new =
        ReportBuilder::new("old.example", "r-2", "example.com", begin).record("192.0.2.3", 5, "none", "pass", "pass");
    let results = store
        .ingest_many(
            [again, new]
                .iter()
                .map(|report| {
                    let path = PathBuf::from(format!("{}.xml", report.file_stem()));
                    Envelope::new(Origin::File { path }, Payload::Bytes(report.xml().into_bytes()))
                })
                .collect(),
            &Limits::default(),
        )
        .await;
    let outcomes: Vec<(Outcome, Option<i64>)> = results
        .into_iter()
        .map(|result| result.expect("stored"))
        .map(|result| (result.outcome, result.duplicate_of))
        .collect();
    assert_eq!(outcomes, [(Outcome::Duplicate, Some(1)), (Outcome::Stored, None)]);
    let messages: i64 =
        sqlx::query_scalar("SELECT sum(messages)::bigint FROM dmarc_daily").fetch_one(&pool).await.expect("rollups");
    assert_eq!(messages, 35);
}
