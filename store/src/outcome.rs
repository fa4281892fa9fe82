//! The one rule that gives every input its outcome, whatever route it took into the database.
//!
//! Input: what was found in the input (its [`Inspection`]: problems, parts that are not
//! reports, container warnings) and what storing its reports came to (a [`Tally`]: how many
//! were new, how many were stored before and by which input). Output: the input's
//! [`InputOutcome`], the values of its row in `inputs`.
//!
//! - **rejected**: something in it could not be read (the reports beside it are still stored);
//! - **stored**: at least one report in it is new;
//! - **duplicate**: it holds reports, all stored before (or its very bytes arrived before:
//!   [`InputOutcome::identical_to`]);
//! - **not_report**: nothing report-like at all.

use dmarcpipe_ingest::inspect::{Contents, Inspection};
pub use dmarcpipe_ingest::outcome::{InputResult, Outcome};

use crate::rows::storable;

/// Problems listed in an input's error text.
const MAX_LISTED_PROBLEMS: usize = 5;

/// What storing the reports of one input came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub stored: u32,
    pub duplicate: u32,
    /// How many of `stored` are failure reports.
    pub forensic_stored: u32,
    pub records: u64,
    pub messages: i64,
    /// The input that holds the first report found to be a duplicate.
    pub duplicate_of: Option<i64>,
}

impl Tally {
    /// A report written now, with its records and messages.
    pub fn stored(&mut self, records: u64, messages: i64) {
        self.stored += 1;
        self.records += records;
        self.messages += messages;
    }

    /// A failure report written now.
    pub fn forensic_stored(&mut self) {
        self.stored(0, 0);
        self.forensic_stored += 1;
    }

    /// A report found stored before, by input `original`. An input run again by `reprocess`
    /// (`own` is its id) finds the reports it stored the first time: those count as its own.
    pub fn already_stored(&mut self, original: Option<i64>, own: Option<i64>, records: u64, messages: i64) {
        if original.is_some() && original == own {
            self.stored(records, messages);
            return;
        }
        self.duplicate += 1;
        if self.duplicate_of.is_none() {
            self.duplicate_of = original;
        }
    }

    /// [`Tally::already_stored`] for a failure report.
    pub fn forensic_already_stored(&mut self, original: Option<i64>, own: Option<i64>) {
        if original.is_some() && original == own {
            self.forensic_stored();
        } else {
            self.already_stored(original, own, 0, 0);
        }
    }
}

/// The values of an input's row that say what became of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputOutcome {
    pub outcome: Outcome,
    pub stage: Option<&'static str>,
    pub error: Option<String>,
    pub warnings: serde_json::Value,
    pub duplicate_of: Option<i64>,
    pub reports_stored: i32,
    pub reports_duplicate: i32,
    pub records: i64,
    pub messages: i64,
    /// How many of `reports_stored` are failure (forensic) reports.
    pub forensic_reports: i32,
}

impl InputOutcome {
    /// The rule (see the module documentation). `notes` are warnings of the store's own (a
    /// sample or the bytes of a rejected input not kept), after the container's warnings.
    pub fn of(found: &Inspection, tally: &Tally, notes: &[(&'static str, String)]) -> InputOutcome {
        let reports = (tally.stored + tally.duplicate) as usize;
        let outcome = match Contents::of(reports, found.problems.len()) {
            Contents::Rejected => Outcome::Rejected,
            Contents::Reports if tally.stored > 0 => Outcome::Stored,
            Contents::Reports => Outcome::Duplicate,
            Contents::NotReport => Outcome::NotReport,
        };
        let mut warnings: Vec<serde_json::Value> = found
            .warnings
            .iter()
            .map(|warning| (warning.code, warning.message.as_str()))
            .chain(notes.iter().map(|(code, message)| (*code, message.as_str())))
            .map(|(code, message)| serde_json::json!({ "code": code, "message": storable(message) }))
            .collect();
        if outcome == Outcome::NotReport {
            warnings.push(serde_json::json!({
                "code": "not_report",
                "message": storable(&Inspection::not_report_reason(&found.skipped)),
            }));
        }
        let error = (!found.problems.is_empty()).then(|| {
            let mut listed: Vec<String> = found
                .problems
                .iter()
                .take(MAX_LISTED_PROBLEMS)
                .map(|problem| format!("{}: {}", problem.location, problem.content))
                .collect();
            if found.problems.len() > MAX_LISTED_PROBLEMS {
                listed.push(format!("and {} more", found.problems.len() - MAX_LISTED_PROBLEMS));
            }
            storable(&listed.join("; ")).into_owned()
        });
        InputOutcome {
            outcome,
            stage: found.problems.first().map(|problem| problem.content.stage().as_str()),
            error,
            warnings: serde_json::Value::Array(warnings),
            duplicate_of: if outcome == Outcome::Duplicate { tally.duplicate_of } else { None },
            reports_stored: tally.stored as i32,
            reports_duplicate: tally.duplicate as i32,
            records: tally.records as i64,
            messages: tally.messages,
            forensic_reports: tally.forensic_stored as i32,
        }
    }

    /// An input the database refused for a reason of its data, which no retry would change (a
    /// value it cannot hold, a limit of its own): rejected at the `store` stage, with the reason.
    pub fn refused(reason: &str, notes: &[(&'static str, String)]) -> InputOutcome {
        let warnings = notes
            .iter()
            .map(|(code, message)| serde_json::json!({ "code": code, "message": storable(message) }))
            .collect();
        InputOutcome {
            outcome: Outcome::Rejected,
            stage: Some("store"),
            error: Some(storable(&format!("the database refused it: {reason}")).into_owned()),
            warnings: serde_json::Value::Array(warnings),
            duplicate_of: None,
            reports_stored: 0,
            reports_duplicate: 0,
            records: 0,
            messages: 0,
            forensic_reports: 0,
        }
    }

    /// An input whose very bytes arrived before as input `original` (stored, a duplicate, not
    /// a report, or rejected with its bytes kept for `reprocess`): a duplicate of it, nothing
    /// else looked at.
    pub fn identical_to(original: i64) -> InputOutcome {
        InputOutcome {
            outcome: Outcome::Duplicate,
            stage: None,
            error: None,
            warnings: serde_json::json!([]),
            duplicate_of: Some(original),
            reports_stored: 0,
            reports_duplicate: 0,
            records: 0,
            messages: 0,
            forensic_reports: 0,
        }
    }
}

impl InputOutcome {
    /// What became of input `input`, whose row says this.
    pub fn result(&self, input: i64) -> InputResult {
        InputResult {
            input,
            outcome: self.outcome,
            reports_stored: self.reports_stored as u32,
            reports_duplicate: self.reports_duplicate as u32,
            forensic_stored: self.forensic_reports as u32,
            records: self.records as u64,
            messages: self.messages,
            duplicate_of: self.duplicate_of,
            error: self.error.clone(),
        }
    }
}
