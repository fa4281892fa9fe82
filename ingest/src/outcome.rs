//! What became of an input: the one outcome every input ends in, and the counts beside it.
//! The store decides it (`dmarcpipe_store`); the channels that acknowledge inputs (SMTP, IMAP,
//! files) act on it, so the type lives here, where both can name it.

use serde::Serialize;

/// The one outcome of every input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// At least one new report was stored.
    Stored,
    /// Every report in it was stored before (or the very same bytes were).
    Duplicate,
    /// No report in it: a bounce, a human reply, a "[Preview]" mail.
    NotReport,
    /// Something in it could not be read; the reason is recorded and the bytes kept.
    Rejected,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Stored => "stored",
            Outcome::Duplicate => "duplicate",
            Outcome::NotReport => "not_report",
            Outcome::Rejected => "rejected",
        }
    }
}

/// What became of one input.
#[derive(Debug, Clone, Serialize)]
pub struct InputResult {
    pub input: i64,
    pub outcome: Outcome,
    /// Reports stored, aggregate and forensic.
    pub reports_stored: u32,
    pub reports_duplicate: u32,
    /// How many of the reports stored are failure (forensic) reports.
    pub forensic_stored: u32,
    pub records: u64,
    pub messages: i64,
    /// The input this one repeats (same bytes, or the same reports).
    pub duplicate_of: Option<i64>,
    /// Why it was rejected.
    pub error: Option<String>,
}
