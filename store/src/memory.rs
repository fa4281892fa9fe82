//! The route of inputs read whole into memory: nearly every report mail and file.
//!
//! Input: an input's [`Inspection`] (what `dmarcpipe parse` shows, see
//! `dmarcpipe_ingest::inspect`), with the failure reports' mails sealed and, for a rejected
//! input, its bytes sealed to keep ([`Prepared`]). Output: the inputs written, several at once
//! in one transaction (`import` hands over small files in batches): one statement each for ids,
//! reports with their records, failure reports, TLS reports, and input rows with rollups.

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::Envelope;
use dmarcpipe_ingest::inspect::{Contents, Inspection};

use crate::Store;
use crate::error::StoreError;
use crate::inputs::{self, Target};
use crate::ledger::{self, Closing, Ledger};
use crate::outcome::InputResult;
use crate::seal::Sealer;
use crate::write::{Tx, Wanted};

/// An input read whole, ready to be written.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub target: Target,
    pub found: Inspection,
    /// The sealed mail of each failure report in `found.forensic` (`None` without recipients).
    sealed: Vec<Option<Vec<u8>>>,
    /// The sealed bytes of a rejected input.
    payload: Option<Vec<u8>>,
    /// Warnings of the store's own (what could not be kept, and why).
    notes: Vec<(&'static str, String)>,
    /// The input itself, kept should the database refuse it (see `Store::refuse`).
    pub envelope: Envelope,
    pub limits: Limits,
}

impl Prepared {
    /// Seals what must be sealed: the failure reports' mails, and a rejected input's bytes.
    pub fn new(
        target: Target,
        found: Inspection,
        envelope: Envelope,
        limits: &Limits,
        sealer: Option<&Sealer>,
    ) -> Result<Prepared, StoreError> {
        let mut notes = Vec::new();
        let sealed = match sealer {
            Some(sealer) => found
                .forensic
                .iter()
                .map(|found| sealer.seal(&found.content.raw).map(Some))
                .collect::<Result<Vec<_>, _>>()?,
            None => {
                if !found.forensic.is_empty() {
                    notes.push(sample_not_kept());
                }
                vec![None; found.forensic.len()]
            }
        };
        let payload = match (&target, found.verdict) {
            (Target::New(_), Contents::Rejected) => match inputs::payload_to_keep(&envelope, limits, sealer) {
                Ok(payload) => Some(payload),
                Err(note) => {
                    notes.push(note);
                    None
                }
            },
            _ => None,
        };
        Ok(Prepared { target, found, sealed, payload, notes, envelope, limits: limits.clone() })
    }

    /// The SHA-256 of a new input's bytes.
    pub fn digest(&self) -> Option<[u8; 32]> {
        match &self.target {
            Target::New(provenance) => Some(provenance.fingerprint.sha256),
            Target::Existing { .. } => None,
        }
    }
}

/// The note for failure reports whose mail is not kept.
pub(crate) fn sample_not_kept() -> (&'static str, String) {
    (
        "sample_not_kept",
        "no age recipients configured ([forensic] recipients): the report mail is not stored, only its clear fields"
            .into(),
    )
}

/// Writes `inputs` in the transaction of `conn`; one result per input, in order. Inputs with
/// the same bytes must go in separate transactions (the second is a duplicate of the first).
pub(crate) async fn write(
    store: &Store,
    tx: &mut Tx<'_>,
    inputs: &[&Prepared],
) -> Result<Vec<InputResult>, StoreError> {
    let targets: Vec<&Target> = inputs.iter().map(|input| &input.target).collect();
    let wanted: Vec<Wanted> = inputs
        .iter()
        .map(|input| Wanted {
            reports: input.found.reports.len(),
            forensic: input.found.forensic.len(),
            tls: input.found.tls.len(),
        })
        .collect();
    let (mut ledger, ids) = Ledger::open(tx, &targets, &wanted).await?;
    let received_at: Vec<_> = inputs.iter().map(|input| ledger::received_at(&input.target)).collect();

    // Inputs whose bytes came before get no report ids: nothing of theirs is offered.
    let mut reports = Vec::new();
    let mut forensic = Vec::new();
    let mut tls = Vec::new();
    for (entry, (input, ids)) in inputs.iter().zip(&ids).enumerate() {
        for (found, &id) in input.found.reports.iter().zip(&ids.reports) {
            reports.push((entry, &found.content, id));
        }
        for ((found, sealed), &id) in input.found.forensic.iter().zip(&input.sealed).zip(&ids.forensic) {
            forensic.push((entry, &found.content.report, id, sealed.as_deref()));
        }
        for (found, &id) in input.found.tls.iter().zip(&ids.tls) {
            tls.push((entry, &found.content, id));
        }
    }
    ledger.write_reports(tx, store, &reports, &received_at).await?;
    ledger.write_forensic(tx, &forensic, &received_at).await?;
    ledger.write_tls(tx, &tls, &received_at).await?;
    let closing: Vec<Closing<'_>> = inputs
        .iter()
        .map(|input| Closing {
            target: &input.target,
            found: &input.found,
            notes: &input.notes,
            payload: input.payload.as_deref(),
        })
        .collect();
    ledger.finish(tx, &closing).await
}
