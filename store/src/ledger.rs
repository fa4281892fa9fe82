//! What storing comes to, input by input, within one transaction: every route writes reports
//! through here, so that a report is counted the same way whichever route brought it.
//!
//! A [`Ledger`] holds, for each input of a transaction, its id and a [`Tally`], and the rollup
//! rows of the reports written. [`Ledger::write_reports`], [`Ledger::write_forensic`] and
//! [`Ledger::write_tls`] offer complete reports to the database and count what became of each
//! (the same report twice in one transaction is offered once); routes that stream a
//! report's records count it themselves with [`Ledger::count`]. [`Ledger::finish`] gives each
//! input its outcome (the rule in `outcome`) and writes the input rows.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use chrono::{DateTime, Utc};
use dmarcpipe_ingest::forensic::ForensicReport;
use dmarcpipe_ingest::inspect::Inspection;
use dmarcpipe_ingest::model::AggregateReport;
use dmarcpipe_ingest::tlsrpt::TlsReport;

use crate::Store;
use crate::aggregate::{self, RECORDS_COPY};
use crate::error::StoreError;
use crate::forensic;
use crate::inputs::{self, Provenance, Target};
use crate::outcome::{InputOutcome, InputResult, Tally};
use crate::rollup::RollupSums;
use crate::route::Thresholds;
use crate::rows::{DailyRow, PayloadRow, SampleRow, SourceRow, Stamp};
use crate::tlsrpt;
use crate::write::{self, Allocation, Claim, Tx, Wanted};

/// One input of a transaction.
#[derive(Debug)]
pub(crate) struct Entry {
    pub id: i64,
    /// Set for an input run again by `reprocess`: the reports it stored before are its own.
    reprocessed: bool,
    /// The earliest input with the very same bytes: then nothing of this one is written.
    pub identical: Option<i64>,
    pub tally: Tally,
}

/// The inputs of one transaction and the rollup rows of their reports.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub entries: Vec<Entry>,
    daily: Vec<DailyRow>,
    sources: Vec<SourceRow>,
}

/// What an input brings to [`Ledger::finish`].
#[derive(Debug)]
pub(crate) struct Closing<'a> {
    pub target: &'a Target,
    pub found: &'a Inspection,
    pub notes: &'a [(&'static str, String)],
    /// The sealed bytes to keep when the input is rejected.
    pub payload: Option<&'a [u8]>,
}

impl Ledger {
    /// Takes ids for `targets` (new inputs get one, and learn whether their bytes came before)
    /// and for the reports about to be offered: those `wanted[i]` for input `i`, none for an
    /// input whose bytes came before. Returns the report ids per input.
    pub async fn open(
        tx: &mut Tx<'_>,
        targets: &[&Target],
        wanted: &[Wanted],
    ) -> Result<(Ledger, Vec<Allocation>), StoreError> {
        let digests: Vec<Option<&[u8]>> = targets
            .iter()
            .map(|target| match target {
                Target::New(provenance) => Some(&provenance.fingerprint.sha256[..]),
                Target::Existing { .. } => None,
            })
            .collect();
        let allocated = write::allocate(tx, &digests, wanted).await?;
        let mut ledger = Ledger::default();
        let mut ids = Vec::with_capacity(targets.len());
        for (target, slot) in targets.iter().zip(allocated) {
            let (id, reprocessed) = match target {
                Target::New(_) => (slot.input.ok_or_else(|| StoreError::Data("no id for a new input".into()))?, false),
                Target::Existing { input } => (*input, true),
            };
            ledger.entries.push(Entry { id, reprocessed, identical: slot.identical, tally: Tally::default() });
            ids.push(slot);
        }
        Ok((ledger, ids))
    }

    /// Counts report of input `entry` as written now (with its rollup sums), or as stored before
    /// by input `original`.
    pub fn count(&mut self, entry: usize, claim: Claim, records: u64, messages: i64, sums: Option<RollupSums>) {
        let input = &mut self.entries[entry];
        match claim {
            Claim::New => {
                input.tally.stored(records, messages);
                if let Some(mut sums) = sums {
                    self.add_rollups(&mut sums);
                }
            }
            Claim::Existing(original) => input.tally.already_stored(original, input.own(), records, messages),
        }
    }

    /// Appends the rollup rows of a report written now.
    pub fn add_rollups(&mut self, sums: &mut RollupSums) {
        self.daily.extend(sums.daily_rows());
        self.sources.extend(sums.take_source_rows());
    }

    /// Offers complete aggregate reports, `(input, report, id)`, with their records; counts what
    /// became of each. The same report twice among them is offered once: the second is a
    /// duplicate of the first.
    pub async fn write_reports(
        &mut self,
        tx: &mut Tx<'_>,
        store: &Store,
        reports: &[(usize, &AggregateReport, i64)],
        received_at: &[DateTime<Utc>],
    ) -> Result<(), StoreError> {
        let offer = Offer::of(reports.iter().map(|(_, report, _)| aggregate::natural_key(&report.header)));
        store.ensure_partitions(offer.offered.iter().map(|&position| reports[position].1.header.date_begin)).await?;
        let stamps: Vec<Stamp> =
            offer.offered.iter().map(|&position| Stamp::new(reports[position].1.header.date_begin)).collect();
        let mut report_rows = Vec::with_capacity(offer.offered.len());
        let mut record_rows = Vec::new();
        for (&position, stamp) in offer.offered.iter().zip(&stamps) {
            let (entry, report, id) = reports[position];
            let input = self.entries[entry].id;
            report_rows.push(aggregate::report_row(
                id,
                input,
                &report.header,
                Some(&report.summary),
                received_at[entry],
            ));
            for (index, record) in report.records.iter().enumerate() {
                record_rows.push(aggregate::record_row(id, index as u64 + 1, stamp, record));
            }
        }
        // Many records go by COPY once their reports are known to be new.
        let by_copy = record_rows.len() > Thresholds::COPY_RECORDS;
        let claims = write::claim(tx, &report_rows, if by_copy { &[][..] } else { &record_rows[..] }).await?;
        if by_copy {
            let new: HashSet<i64> = report_rows
                .iter()
                .zip(&claims)
                .filter(|(_, claim)| **claim == Claim::New)
                .map(|(row, _)| row.id)
                .collect();
            let mut data = Vec::new();
            record_rows.iter().filter(|row| new.contains(&row.report)).for_each(|row| row.copy_text(&mut data));
            write::copy(tx, &RECORDS_COPY, data).await?;
        }
        drop((report_rows, record_rows));
        let claims = offer.claims(claims, |position| self.entries[reports[position].0].id);
        for (&(entry, report, _), claim) in reports.iter().zip(claims) {
            let sums = (claim == Claim::New).then(|| {
                let mut sums = RollupSums::new(&report.header);
                report.records.iter().for_each(|record| sums.add(record));
                sums
            });
            self.count(entry, claim, report.summary.record_count, report.summary.message_count, sums);
        }
        Ok(())
    }

    /// Offers failure reports, `(input, report, id, sealed mail)`; counts what became of each.
    pub async fn write_forensic(
        &mut self,
        tx: &mut Tx<'_>,
        reports: &[(usize, &ForensicReport, i64, Option<&[u8]>)],
        received_at: &[DateTime<Utc>],
    ) -> Result<(), StoreError> {
        let rows: Vec<_> = reports
            .iter()
            .map(|&(entry, report, id, sealed)| {
                forensic::report_row(id, self.entries[entry].id, received_at[entry], report, sealed)
            })
            .collect();
        let samples: Vec<SampleRow<'_>> = reports
            .iter()
            .filter_map(|&(_, _, id, sealed)| sealed.map(|sealed| SampleRow { report: id, sealed }))
            .collect();
        let claims = write::claim(tx, &rows, &samples[..]).await?;
        for (&(entry, ..), claim) in reports.iter().zip(claims) {
            let input = &mut self.entries[entry];
            match claim {
                Claim::New => input.tally.forensic_stored(),
                Claim::Existing(original) => input.tally.forensic_already_stored(original, input.own()),
            }
        }
        Ok(())
    }

    /// Offers SMTP TLS reports, `(input, report, id)`, with their policies and failure details;
    /// counts what became of each, as reports without records. The same report twice among them
    /// is offered once: the second is a duplicate of the first.
    pub async fn write_tls(
        &mut self,
        tx: &mut Tx<'_>,
        reports: &[(usize, &TlsReport, i64)],
        received_at: &[DateTime<Utc>],
    ) -> Result<(), StoreError> {
        let offer = Offer::of(reports.iter().map(|(_, report, _)| tlsrpt::natural_key(report)));
        let mut rows = Vec::with_capacity(offer.offered.len());
        let (mut policies, mut failures) = (Vec::new(), Vec::new());
        for &position in &offer.offered {
            let (entry, report, id) = reports[position];
            rows.push(tlsrpt::report_row(id, self.entries[entry].id, received_at[entry], report));
            tlsrpt::child_rows(id, report, &mut policies, &mut failures);
        }
        let claims = write::claim(tx, &rows, (&policies[..], &failures[..])).await?;
        let claims = offer.claims(claims, |position| self.entries[reports[position].0].id);
        for (&(entry, ..), claim) in reports.iter().zip(claims) {
            self.count(entry, claim, 0, 0, None);
        }
        Ok(())
    }

    /// Gives every input its outcome and writes the input rows (new ones inserted, those run
    /// again updated), the kept bytes of rejected inputs and the rollup rows. `closing` has one
    /// element per input, in order.
    pub async fn finish(self, tx: &mut Tx<'_>, closing: &[Closing<'_>]) -> Result<Vec<InputResult>, StoreError> {
        let outcomes: Vec<InputOutcome> = self
            .entries
            .iter()
            .zip(closing)
            .map(|(entry, closing)| match entry.identical {
                Some(original) => InputOutcome::identical_to(original),
                None => InputOutcome::of(closing.found, &entry.tally, closing.notes),
            })
            .collect();
        let mut rows = Vec::new();
        let mut payloads = Vec::new();
        for ((entry, closing), outcome) in self.entries.iter().zip(closing).zip(&outcomes) {
            match closing.target {
                Target::New(provenance) => {
                    rows.push(inputs::input_row(entry.id, provenance, outcome));
                    if let (None, Some(payload)) = (entry.identical, closing.payload) {
                        payloads.push(PayloadRow { input: entry.id, sealed: true, payload });
                    }
                }
                Target::Existing { input } => {
                    write::finish_again(tx, *input, outcome).await?;
                }
            }
        }
        write::finish(tx, &rows, &payloads, &self.daily, &self.sources).await?;
        Ok(self.entries.iter().zip(&outcomes).map(|(entry, outcome)| outcome.result(entry.id)).collect())
    }
}

/// Reports offered to the database once per natural key (a claim takes reports whose keys
/// differ): a report that repeats one before it in the same transaction is not offered, and is
/// a duplicate of the input of the first when that one is written now.
struct Offer {
    /// The positions of the reports offered, in order.
    offered: Vec<usize>,
    /// For each report, the position of the first with its natural key.
    first: Vec<usize>,
}

impl Offer {
    fn of<K: Hash + Eq>(keys: impl Iterator<Item = K>) -> Offer {
        let mut seen = HashMap::new();
        let mut offered = Vec::new();
        let first = keys
            .enumerate()
            .map(|(position, key)| {
                *seen.entry(key).or_insert_with(|| {
                    offered.push(position);
                    position
                })
            })
            .collect();
        Offer { offered, first }
    }

    /// What became of each report, from the claims of those offered (in order);
    /// `input_of(position)` is the id of the input a report came with.
    fn claims(&self, claims: Vec<Claim>, input_of: impl Fn(usize) -> i64) -> Vec<Claim> {
        let claim_of: HashMap<usize, Claim> = self.offered.iter().copied().zip(claims).collect();
        self.first
            .iter()
            .enumerate()
            .map(|(position, &first)| match claim_of[&first] {
                // Written now by its first occurrence: this one repeats that input's report.
                Claim::New if first != position => Claim::Existing(Some(input_of(first))),
                claim => claim,
            })
            .collect()
    }
}

impl Entry {
    /// The input whose earlier reports count as its own (see [`Tally::already_stored`]).
    fn own(&self) -> Option<i64> {
        self.reprocessed.then_some(self.id)
    }
}

/// Whether an input's provenance is known (a new arrival) or it is run again.
pub(crate) fn received_at(target: &Target) -> DateTime<Utc> {
    match target {
        Target::New(Provenance { received_at, .. }) => *received_at,
        // Reports found again by `reprocess` are dated by that run.
        Target::Existing { .. } => Utc::now(),
    }
}
