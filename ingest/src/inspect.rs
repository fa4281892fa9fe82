//! Everything in one input, read into memory: what `dmarcpipe parse` prints, what the golden
//! tests over `samples/` compare, and what the store writes for every input small enough to
//! be read whole (nearly all of them).
//!
//! [`inspect`] collects the items of [`crate::read`]; so does the store's streaming route for
//! the rare input too large for memory, item by item. Both classify an input by the same rule
//! ([`Contents::of`]).

use serde::{Serialize, Serializer};

use crate::envelope::Envelope;
use crate::error::IngestError;
use crate::forensic::ForensicReport;
use crate::limits::Limits;
use crate::model::AggregateReport;
use crate::read::{self, Item, Sink};
use crate::tlsrpt::TlsReport;

/// Everything found in one input.
#[derive(Debug, Default, Serialize)]
pub struct Inspection {
    pub verdict: Contents,
    pub reports: Vec<Found<AggregateReport>>,
    /// Failure (forensic) reports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forensic: Vec<Found<ForensicFound>>,
    /// SMTP TLS reports (RFC 8460).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<Found<TlsReport>>,
    /// Parts that could not be unpacked or parsed, with the reason.
    pub problems: Vec<Found<IngestError>>,
    /// Parts that are not reports.
    pub skipped: Vec<Found<String>>,
    /// Container oddities that were tolerated.
    pub warnings: Vec<ContainerWarning>,
}

/// Something found at a location inside the input.
#[derive(Debug, Serialize)]
pub struct Found<T> {
    pub location: String,
    pub content: T,
}

/// A failure report and the report mail it was read from (to be sealed; never printed).
#[derive(Debug, Serialize)]
pub struct ForensicFound {
    #[serde(flatten)]
    pub report: ForensicReport,
    #[serde(skip)]
    pub raw: Vec<u8>,
}

/// A tolerated oddity of a container. Shown as its message; the code goes with the input's
/// warnings in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerWarning {
    pub code: &'static str,
    pub message: String,
}

impl Serialize for ContainerWarning {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.message)
    }
}

/// What an input holds, before storage decides stored versus duplicate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Contents {
    /// At least one report and no problem.
    Reports,
    /// Something was wrong (reports found alongside are still stored).
    Rejected,
    /// Nothing report-like at all.
    #[default]
    NotReport,
}

impl Contents {
    /// The rule shared by every consumer of [`crate::read`].
    pub fn of(reports: usize, problems: usize) -> Contents {
        if problems > 0 {
            Contents::Rejected
        } else if reports > 0 {
            Contents::Reports
        } else {
            Contents::NotReport
        }
    }
}

impl Inspection {
    /// One line saying why an input holds no report: what was found instead.
    pub fn not_report_reason(skipped: &[Found<String>]) -> String {
        if skipped.is_empty() {
            return "no report found".into();
        }
        let parts: Vec<String> = skipped.iter().take(5).map(|f| format!("{}: {}", f.location, f.content)).collect();
        let more = skipped.len().saturating_sub(5);
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        format!("no report found ({}{tail})", parts.join("; "))
    }

    /// Adds one item found at `location` (aggregate reports are read whole).
    pub fn add(&mut self, location: &str, item: Item<'_, '_>) {
        let location = location.to_owned();
        match item {
            Item::Aggregate(document) => {
                // A broken report comes back as a problem of its own.
                if let Some(report) = document.read_all() {
                    self.reports.push(Found { location, content: report });
                }
            }
            Item::Forensic(report, raw) => {
                self.forensic.push(Found { location, content: ForensicFound { report: *report, raw: raw.to_vec() } })
            }
            Item::Tls(report) => self.tls.push(Found { location, content: *report }),
            Item::NotReport(what) => self.skipped.push(Found { location, content: what }),
            Item::Problem(error) => self.problems.push(Found { location, content: error }),
        }
    }

    fn classify(mut self) -> Inspection {
        self.verdict = Contents::of(self.reports.len() + self.forensic.len() + self.tls.len(), self.problems.len());
        self
    }
}

/// Unpacks and parses `envelope` entirely in memory.
pub fn inspect(envelope: &Envelope, limits: &Limits) -> Inspection {
    let mut inspection = Inspection::default();
    let Ok(()) = read::read(envelope, limits, &mut inspection);
    inspection.classify()
}

impl Sink for Inspection {
    type Error = std::convert::Infallible;

    fn item(&mut self, location: &str, item: Item<'_, '_>) -> Result<(), Self::Error> {
        self.add(location, item);
        Ok(())
    }

    fn warning(&mut self, code: &'static str, message: String) {
        self.warnings.push(ContainerWarning { code, message });
    }
}

/// The input holds more records than the caller wanted in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgrown;

/// [`inspect`], giving up as soon as the input's reports hold more than `max_records` records
/// together (a TLS report weighs its rows, see [`TlsReport::rows`]), or reading it would hold more than `memory` bytes of it at once (the store then
/// streams the input instead).
pub fn inspect_up_to(
    envelope: &Envelope,
    limits: &Limits,
    max_records: usize,
    memory: u64,
) -> Result<Inspection, Outgrown> {
    let mut collector = Bounded { inspection: Inspection::default(), records_left: max_records };
    read::read_within(envelope, limits, memory, &mut collector)?;
    Ok(collector.inspection.classify())
}

/// Collects like [`Inspection`] does, up to a number of records.
struct Bounded {
    inspection: Inspection,
    records_left: usize,
}

impl Sink for Bounded {
    type Error = Outgrown;

    fn item(&mut self, location: &str, item: Item<'_, '_>) -> Result<(), Outgrown> {
        let Item::Aggregate(document) = item else {
            if let Item::Tls(report) = &item {
                // Its failure details weigh like records.
                self.records_left = self.records_left.checked_sub(report.rows()).ok_or(Outgrown)?;
            }
            self.inspection.add(location, item);
            return Ok(());
        };
        let mut records = Vec::new();
        while let Some(record) = document.next_record() {
            if self.records_left == 0 {
                return Err(Outgrown);
            }
            self.records_left -= 1;
            records.push(record);
        }
        if let Some(summary) = document.finish() {
            let report = AggregateReport { header: document.header().clone(), summary, records };
            self.inspection.reports.push(Found { location: location.to_owned(), content: report });
        }
        Ok(())
    }

    fn warning(&mut self, code: &'static str, message: String) {
        self.inspection.warning(code, message);
    }

    fn over_memory(&mut self) -> Result<(), Outgrown> {
        Err(Outgrown)
    }
}
