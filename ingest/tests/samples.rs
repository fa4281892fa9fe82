//! Golden tests over `samples/`: every input is unpacked and parsed without a database, and what
//! was found (reports with their normalized records and warnings, problems, skipped parts) is
//! compared with `<input>.expected.json` beside it.
//!
//! On a mismatch the actual output is written to `<input>.actual.json` for a diff.
//! `UPDATE_SAMPLES=1 cargo test -p dmarcpipe-ingest --test samples` rewrites the expectations
//! (review the diff before committing them). Mails are also fed with the other line ending
//! (CRLF for LF files and the reverse), which must not change the reports found.

use std::path::{Path, PathBuf};

use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::envelope::{Envelope, Origin, Payload};
use dmarcpipe_ingest::inspect::{Inspection, inspect};
use dmarcpipe_ingest::intake::files::Walk;
use serde_json::{Value, json};

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples")
}

/// The inputs under test: files, and maildirs as a whole (their expectations sit beside the
/// directory). Generator, documentation and expectation files are not inputs (JSON inputs,
/// such as TLS reports, are).
fn sample_inputs(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("samples/ is readable").map(|entry| entry.expect("an entry").path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let expectation = name.ends_with(".expected.json") || name.ends_with(".actual.json");
        if name.starts_with('.') || expectation || name.ends_with(".md") || name.ends_with(".py") {
            continue;
        }
        if path.is_dir() {
            if path.join("cur").is_dir() && path.join("new").is_dir() {
                found.push(path);
            } else {
                sample_inputs(&path, found);
            }
        } else {
            found.push(path);
        }
    }
}

fn relative(path: &Path) -> String {
    let root = samples_dir().canonicalize().expect("samples/ exists");
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    path.strip_prefix(&root).unwrap_or(&path).display().to_string()
}

fn expected_path(input: &Path) -> PathBuf {
    let mut name = input.file_name().expect("a file name").to_os_string();
    name.push(".expected.json");
    input.with_file_name(name)
}

/// What dmarcpipe finds in one sample path (several inputs for an mbox or a maildir).
fn actual(input: &Path, limits: &Limits) -> Value {
    let results: Vec<Value> = Walk::new([input.to_path_buf()], limits.max_message_bytes)
        .map(|item| {
            let envelope = item.expect("sample inputs are readable");
            let inspection = inspect(&envelope, limits);
            let origin = match &envelope.origin {
                Origin::Mbox { path, index } => format!("{} (message {index})", relative(path)),
                Origin::File { path } => relative(path),
                other => other.to_string(),
            };
            json!({ "input": origin, "inspection": inspection })
        })
        .collect();
    Value::Array(results)
}

#[test]
fn every_sample_gives_its_expected_output() {
    let limits = Limits::default();
    let mut inputs = Vec::new();
    sample_inputs(&samples_dir(), &mut inputs);
    assert!(inputs.len() > 50, "samples/ holds the corpus ({} inputs found)", inputs.len());
    let update = std::env::var_os("UPDATE_SAMPLES").is_some();
    let mut mismatches = Vec::new();
    for input in &inputs {
        let actual = actual(input, &limits);
        let expected_file = expected_path(input);
        let mut text = serde_json::to_string_pretty(&actual).expect("serializable");
        text.push('\n');
        if update {
            std::fs::write(&expected_file, &text).expect("expectations are writable");
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&expected_file) {
            Ok(expected) => serde_json::from_str(&expected).expect("expectations are JSON"),
            Err(_) => Value::Null,
        };
        let actual_file = expected_file.with_extension("").with_extension("actual.json");
        if expected != actual {
            std::fs::write(&actual_file, &text).expect("actual output is writable");
            mismatches.push(relative(input));
        } else {
            let _ = std::fs::remove_file(&actual_file);
        }
    }
    assert!(mismatches.is_empty(), "outputs differ from the expectations (see *.actual.json): {mismatches:#?}");
}

/// The reports found (aggregate and TLS), without locations.
fn reports(inspection: &Inspection) -> Vec<Value> {
    let aggregate = inspection.reports.iter().map(|found| serde_json::to_value(&found.content));
    let tls = inspection.tls.iter().map(|found| serde_json::to_value(&found.content));
    aggregate.chain(tls).map(|value| value.expect("serializable")).collect()
}

#[test]
fn line_endings_do_not_change_what_mails_contain() {
    let limits = Limits::default();
    let mut inputs = Vec::new();
    sample_inputs(&samples_dir(), &mut inputs);
    let mails: Vec<&PathBuf> = inputs.iter().filter(|p| p.extension().is_some_and(|e| e == "eml")).collect();
    assert!(mails.len() > 10);
    for mail in mails {
        let bytes = std::fs::read(mail).expect("readable");
        let crlf = bytes.windows(2).any(|w| w == b"\r\n");
        let converted = if crlf {
            String::from_utf8_lossy(&bytes).replace("\r\n", "\n").into_bytes()
        } else {
            String::from_utf8_lossy(&bytes).replace('\n', "\r\n").into_bytes()
        };
        let origin = Origin::File { path: mail.clone() };
        let original = inspect(&Envelope::new(origin.clone(), Payload::Bytes(bytes)), &limits);
        let other = inspect(&Envelope::new(origin, Payload::Bytes(converted)), &limits);
        assert_eq!(original.verdict, other.verdict, "{}", mail.display());
        assert_eq!(reports(&original), reports(&other), "{}", mail.display());
    }
}
