//! Shared by the store's test files: a store that seals to a throwaway identity; the
//! `../shared` corpus and a run of one of its files.

#![allow(dead_code)] // each test file uses its own share

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_store::seal::{self, Opener, Sealer};
use dmarcpipe_store::{InputResult, Outcome, Store};
use sqlx::PgPool;

/// A store sealing to a new identity, and the opener of that identity.
pub fn sealing_store(pool: &PgPool) -> (Store, Arc<Opener>) {
    let (identity, recipient) = seal::generate_identity();
    let sealer = Sealer::new(&[recipient], "test", &[]).expect("a sealer");
    let opener = Opener::from_identity_text(&identity, "test identity").expect("an opener");
    (Store::from_pool(pool.clone()).with_sealer(Some(sealer)), Arc::new(opener))
}

/// The shared corpus (`../shared`, or `DMARCPIPE_SHARED`), or `None` after saying that `test`
/// checks nothing without it.
pub fn shared(test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("DMARCPIPE_SHARED")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared"), PathBuf::from);
    if path.join("corpus").is_dir() {
        return Some(path);
    }
    // Straight to the stderr handle: libtest captures `eprintln!` of a passing test.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {} is absent, nothing was checked", path.display());
    None
}

/// Stores the file `path` of `shared` into empty tables (vectors share natural keys) and
/// checks its outcome, and that a refusal says why. A mismatch goes to `failures`; the name
/// of the file and the result are returned otherwise.
pub async fn ingest_case(
    store: &Store,
    shared: &Path,
    path: &Path,
    outcome: Outcome,
    failures: &mut Vec<String>,
) -> Option<(String, InputResult)> {
    // The shared vectors share natural keys: each file starts from empty tables.
    sqlx::query(
        "TRUNCATE inputs, input_payloads, aggregate_reports, aggregate_records, aggregate_rollup_daily, \
         aggregate_rollup_sources, forensic_reports, forensic_samples, tls_reports CASCADE",
    )
    .execute(store.pool())
    .await
    .expect("truncated");
    let envelope = Envelope::new(Origin::File { path: path.to_owned() }, Payload::File(path.to_owned()));
    let result = store.ingest(envelope, &Limits::default()).await.expect("the database takes it");
    let name = path.strip_prefix(shared).unwrap_or(path).display().to_string();
    if result.outcome != outcome {
        failures.push(format!("{name}: {:?} instead of {outcome:?} ({:?})", result.outcome, result.error));
        return None;
    }
    if outcome == Outcome::Rejected && result.error.as_deref().is_none_or(str::is_empty) {
        failures.push(format!("{name}: rejected without a reason"));
    }
    Some((name, result))
}
