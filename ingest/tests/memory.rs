//! What reading an input holds in memory is bounded: archives inside a stream go to temporary
//! files rather than memory, and what has to be held (mails, decoded parts) counts against a
//! cap, past which the part is refused with the limit named, or the reader gives up to read the
//! input another way (the store's streaming route).

use std::path::PathBuf;

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::inspect::{Contents, Outgrown, inspect, inspect_up_to};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng, gzip, mail_with_attachment, zip_stored};

const NOV_2: u64 = 1_793_577_600;

fn envelope(name: &str, bytes: Vec<u8>) -> Envelope {
    Envelope::new(Origin::File { path: PathBuf::from(name) }, Payload::Bytes(bytes))
}

/// The XML of a report of `records` records, a few MiB for tens of thousands.
fn report_xml(records: u64) -> Vec<u8> {
    let mut rng = Rng(11);
    ReportBuilder::new("memory.example", "nested-1", "example.com", NOV_2)
        .random_records(records, &mut rng)
        .xml()
        .into_bytes()
}

#[test]
fn archives_nested_in_a_stream_are_not_held_in_memory() {
    let xml = report_xml(20_000);
    assert!(xml.len() > 4 << 20, "the report is several MiB ({} bytes)", xml.len());
    // gzip > zip > zip > report: each zip is several MiB (stored), read from a decompressing
    // stream.
    let nested = gzip(&zip_stored(&[("level2.zip", &zip_stored(&[("report.xml", &xml)]))]));
    let input = envelope("nested.zip.gz", nested);
    // Allowed to hold 512 KiB: more than the input, far less than either archive.
    let found = inspect_up_to(&input, &Limits::default(), usize::MAX, 512 << 10).expect("nothing held in memory");
    assert_eq!(found.verdict, Contents::Reports, "{:?}", found.problems);
    assert_eq!(found.reports.len(), 1);
    assert_eq!(found.reports[0].content.records.len(), 20_000);
}

#[test]
fn a_mail_inside_an_archive_counts_against_what_the_input_may_hold() {
    let xml = report_xml(10_000);
    let mail = mail_with_attachment("Report Domain: example.com", "r.xml", "text/xml", &xml);
    assert!(mail.len() > 1 << 20, "the mail is over a MiB ({} bytes)", mail.len());
    let input = envelope("mail.gz", gzip(&mail));
    // The memory route of the store gives up, to stream the input instead...
    assert_eq!(inspect_up_to(&input, &Limits::default(), usize::MAX, 1 << 20).err(), Some(Outgrown));
    // ...and a reader with a budget too small for it records the limit, naming it.
    let tight = Limits { max_memory: 4 << 20, ..Limits::default() };
    let found = inspect(&input, &tight);
    assert_eq!(found.verdict, Contents::Rejected);
    let problem = found.problems[0].content.to_string();
    assert!(problem.contains("of one input in memory at once exceeds the limit of 1 MiB"), "{problem}");
    // With the default budget the same input is read whole.
    let found = inspect(&input, &Limits::default());
    assert_eq!(found.verdict, Contents::Reports, "{:?}", found.problems);
}
