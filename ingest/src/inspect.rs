//! Unpacks and parses a whole input in memory, without a database: what `dmarcpipe parse`
//! prints and what the golden tests over `samples/` compare.
//!
//! The store has its own visitor that streams records into PostgreSQL; both see the same
//! documents in the same order, and both classify an input by the same rule
//! ([`Inspection::verdict`]).

use serde::Serialize;

use crate::aggregate::{self, Opened};
use crate::envelope::Envelope;
use crate::error::IngestError;
use crate::forensic::ForensicReport;
use crate::limits::Limits;
use crate::model::AggregateReport;
use crate::unpack::{self, Document, DocumentKind, Visitor};

/// Everything found in one input.
#[derive(Debug, Default, Serialize)]
pub struct Inspection {
    pub verdict: Verdict,
    pub reports: Vec<Found<AggregateReport>>,
    /// Failure (forensic) reports.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forensic: Vec<Found<ForensicReport>>,
    /// Parts that could not be unpacked or parsed, with the reason.
    pub problems: Vec<Found<String>>,
    /// Parts that are not reports.
    pub skipped: Vec<Found<String>>,
    /// Container oddities that were tolerated.
    pub warnings: Vec<String>,
}

/// Something found at a location inside the input.
#[derive(Debug, Serialize)]
pub struct Found<T> {
    pub location: String,
    pub content: T,
}

/// How an input is classified before storage decides stored versus duplicate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// At least one report and no problem.
    Reports,
    /// Something was wrong (reports found alongside are still stored).
    Rejected,
    /// Nothing report-like at all.
    #[default]
    NotReport,
}

impl Verdict {
    /// The rule shared by every consumer of the unpacker.
    pub fn of(reports: usize, problems: usize) -> Verdict {
        if problems > 0 {
            Verdict::Rejected
        } else if reports > 0 {
            Verdict::Reports
        } else {
            Verdict::NotReport
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
}

/// Unpacks and parses `envelope` entirely in memory.
pub fn inspect(envelope: &Envelope, limits: &Limits) -> Inspection {
    let mut collector = Collector { limits, inspection: Inspection::default() };
    let Ok(()) = unpack::unpack(envelope, limits, &mut collector);
    let mut inspection = collector.inspection;
    inspection.verdict = Verdict::of(inspection.reports.len() + inspection.forensic.len(), inspection.problems.len());
    inspection
}

struct Collector<'a> {
    limits: &'a Limits,
    inspection: Inspection,
}

impl Visitor for Collector<'_> {
    type Error = std::convert::Infallible;

    fn document(&mut self, document: Document<'_>) -> Result<(), Self::Error> {
        let location = document.location.to_owned();
        match document.kind {
            DocumentKind::Xml => match aggregate::parse(document.reader, self.limits.max_xml_depth) {
                Ok(Opened::Report(report)) => self.inspection.reports.push(Found { location, content: report }),
                Ok(Opened::NotAggregate(what)) => self.inspection.skipped.push(Found { location, content: what }),
                Err(err) => self.inspection.problems.push(Found { location, content: err.to_string() }),
            },
            DocumentKind::Json => match crate::unpack::classify_json(document.reader) {
                Some(err) => self.inspection.problems.push(Found { location, content: err.to_string() }),
                None => self.inspection.skipped.push(Found { location, content: "JSON, not a report".into() }),
            },
        }
        Ok(())
    }

    fn forensic(&mut self, location: &str, report: ForensicReport, _raw: &[u8]) -> Result<(), Self::Error> {
        self.inspection.forensic.push(Found { location: location.to_owned(), content: report });
        Ok(())
    }

    fn problem(&mut self, location: &str, error: IngestError) -> Result<(), Self::Error> {
        self.inspection.problems.push(Found { location: location.to_owned(), content: error.to_string() });
        Ok(())
    }

    fn skipped(&mut self, location: &str, what: &str) {
        self.inspection.skipped.push(Found { location: location.to_owned(), content: what.to_owned() });
    }

    fn warning(&mut self, _code: &'static str, message: String) {
        self.inspection.warnings.push(message);
    }
}
