//! The MIME limits hold for every kind of nesting, whatever the depth: a report inside more
//! multipart levels than `limits.max_mime_depth`, or inside a mail of more parts than
//! `limits.max_mime_parts`, is rejected with the limit named and never reached, and a
//! reasonably deep mail still gives its report. (Time and memory are measured, not asserted:
//! see the pull request notes and `mime_scan`'s documentation.)

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::inspect::{Contents, Inspection, inspect};
use dmarcpipe_ingest::testkit::{ReportBuilder, attachment_part, gzip, nested_multiparts};

fn report_part() -> String {
    let report = ReportBuilder::new("Nested Reporter", "nested-1", "example.com", 1_793_491_200).record(
        "192.0.2.10",
        3,
        "none",
        "pass",
        "pass",
    );
    attachment_part(
        "nested.example!example.com!1793491200!1793577599.xml.gz",
        "application/gzip",
        &gzip(report.xml().as_bytes()),
    )
}

fn inspected(mail: Vec<u8>) -> Inspection {
    let envelope = Envelope::new(Origin::Stdin, Payload::Bytes(mail));
    inspect(&envelope, &Limits::default())
}

fn problems(inspection: &Inspection) -> Vec<String> {
    inspection.problems.iter().map(|found| found.content.to_string()).collect()
}

#[test]
fn a_report_five_multiparts_deep_is_found() {
    let inspection = inspected(nested_multiparts(&report_part(), 5, false));
    assert_eq!(inspection.verdict, Contents::Reports, "{:?}", problems(&inspection));
    assert_eq!(inspection.reports.len(), 1);
}

#[test]
fn a_report_beyond_the_depth_limit_is_rejected_with_the_limit_named_and_not_read() {
    let part = report_part();
    for (depth, same_boundary) in [(11, false), (1000, false), (1000, true), (200_000, false)] {
        let inspection = inspected(nested_multiparts(&part, depth, same_boundary));
        assert_eq!(inspection.verdict, Contents::Rejected, "depth {depth}");
        assert_eq!(
            problems(&inspection),
            ["MIME nesting exceeds the limit of 10 levels (limits.max_mime_depth)"],
            "depth {depth}"
        );
        assert!(inspection.reports.is_empty(), "depth {depth}: the report inside is not read");
    }
}

#[test]
fn a_mail_of_too_many_parts_is_rejected_before_any_is_read() {
    let part = report_part();
    let mut mail =
        b"From: a@reporter.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=w\r\n\r\n".to_vec();
    for _ in 0..100_000 {
        mail.extend_from_slice(b"--w\r\n");
        mail.extend_from_slice(part.as_bytes());
    }
    mail.extend_from_slice(b"--w--\r\n");
    let inspection = inspected(mail);
    assert_eq!(inspection.verdict, Contents::Rejected);
    assert_eq!(
        problems(&inspection),
        ["the number of MIME parts in one message exceeds the limit of 500 (limits.max_mime_parts)"]
    );
    assert!(inspection.reports.is_empty());
}
