//! Inputs as rows: provenance (where and when an input arrived, its fingerprint), its row in
//! `inputs` with the outcome the rule gave it, and the kept bytes of rejected inputs, which
//! `reprocess` runs again.

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::envelope::{Envelope, Fingerprint};
use dmarcpipe_ingest::{IngestError, Limits};

use crate::error::StoreError;
use crate::outcome::{InputOutcome, InputResult};
use crate::rows::{InputRow, PayloadRow, storable};
use crate::seal::Sealer;
use crate::write::{self, Tx, timely};

/// Where and when an input arrived.
#[derive(Debug, Clone)]
pub(crate) struct Provenance {
    pub channel: &'static str,
    pub origin: String,
    pub fingerprint: Fingerprint,
    pub received_at: DateTime<Utc>,
}

impl Provenance {
    /// Hashes the input (reading a file payload once).
    pub fn of(envelope: &Envelope) -> Result<Provenance, IngestError> {
        Ok(Provenance {
            channel: envelope.origin.channel(),
            origin: storable(&envelope.origin.to_string()).into_owned(),
            fingerprint: envelope.fingerprint()?,
            received_at: envelope.received_at,
        })
    }
}

/// Which input row an outcome goes to.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A new arrival: a new row.
    New(Provenance),
    /// `reprocess` of a recorded input: its row is rewritten.
    Existing { input: i64 },
}

/// The row of new input `id` with `outcome`.
pub(crate) fn input_row<'a>(id: i64, provenance: &'a Provenance, outcome: &'a InputOutcome) -> InputRow<'a> {
    InputRow {
        id,
        channel: provenance.channel,
        origin: &provenance.origin,
        sha256: &provenance.fingerprint.sha256,
        size: provenance.fingerprint.size as i64,
        received_at: provenance.received_at,
        processed_at: Utc::now(),
        outcome: outcome.outcome.as_str(),
        stage: outcome.stage,
        error: outcome.error.as_deref(),
        warnings: &outcome.warnings,
        duplicate_of: outcome.duplicate_of,
        reports_stored: outcome.reports_stored,
        reports_duplicate: outcome.reports_duplicate,
        records: outcome.records,
        messages: outcome.messages,
        attempts: 1,
        forensic_reports: outcome.forensic_reports,
    }
}

/// The input's bytes to keep when it is rejected, sealed, or a note saying why they are not
/// kept. Rejected inputs may be mail: they are never kept in clear.
pub(crate) fn payload_to_keep(
    envelope: &Envelope,
    limits: &Limits,
    sealer: Option<&Sealer>,
) -> Result<Vec<u8>, (&'static str, String)> {
    let Some(sealer) = sealer else {
        return Err((
            "payload_not_kept",
            "no age recipients configured ([forensic] recipients): the bytes of a rejected input are never stored \
             in clear; re-import it from its origin after a fix"
                .into(),
        ));
    };
    match envelope.bytes_up_to(limits.max_kept_bytes) {
        Ok(Some(bytes)) => sealer.seal(&bytes).map_err(|err| ("payload_not_kept", err.to_string())),
        Ok(None) => Err((
            "payload_not_kept",
            format!(
                "input larger than limits.max_kept_bytes ({} bytes): re-import it from its origin after a fix",
                limits.max_kept_bytes
            ),
        )),
        Err(err) => Err(("payload_not_kept", err.to_string())),
    }
}

/// Takes rejected input `input` for `reprocess`, in the transaction of `conn` (other processes
/// skip it meanwhile): its kept bytes and whether they are sealed, or `None` when it is no
/// longer rejected, has no kept bytes, or another process has it.
pub(crate) async fn take_kept(tx: &mut Tx<'_>, input: i64) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
    let query = sqlx::query_as(
        "SELECT p.payload, p.sealed FROM inputs i JOIN input_payloads p ON p.input = i.id \
         WHERE i.id = $1 AND i.outcome = 'rejected' FOR UPDATE OF i SKIP LOCKED",
    )
    .bind(input);
    timely(tx.patience, query.fetch_optional(&mut *tx.conn)).await
}

/// Records a new input that the database refused for a reason of its data (see
/// [`InputOutcome::refused`]), with its bytes kept sealed, so that the source need not retry
/// for ever and `reprocess` can run it after a fix.
pub(crate) async fn record_refused(
    tx: &mut Tx<'_>,
    provenance: &Provenance,
    envelope: &Envelope,
    limits: &Limits,
    sealer: Option<&Sealer>,
    reason: &str,
) -> Result<InputResult, StoreError> {
    let digest = &provenance.fingerprint.sha256[..];
    let id = write::allocate(tx, &[Some(digest)], &[write::Wanted::default()])
        .await?
        .into_iter()
        .next()
        .and_then(|slot| slot.input)
        .ok_or_else(|| StoreError::Data("no id for a new input".into()))?;
    let (payload, notes) = match payload_to_keep(envelope, limits, sealer) {
        Ok(payload) => (Some(payload), Vec::new()),
        Err(note) => (None, vec![note]),
    };
    let outcome = InputOutcome::refused(reason, &notes);
    let payloads: Vec<PayloadRow<'_>> =
        payload.as_deref().map(|payload| PayloadRow { input: id, sealed: true, payload }).into_iter().collect();
    write::finish(tx, &[input_row(id, provenance, &outcome)], &payloads, &[], &[]).await?;
    Ok(outcome.result(id))
}
