//! The reports nobody here wrote: every aggregate file of `../shared/corpus` and
//! `../shared/standards/vectors` is stored with the right record count and message total, and
//! every deliberately broken one gets its outcome and a reason. Skipped when `../shared` is
//! absent (the project's own tests do not need it), with a `SKIPPED` line that `cargo test`
//! shows beside the test's `ok`, so that a skipped test never reads as a pass.
//! `DMARCPIPE_SHARED` points the tests at another copy of it.
//!
//! The expected counts come from outside our parser: a plain text scan of the XML for plain
//! files, the JSON that stalwartlabs/mail-auth published beside its samples, and, for the few
//! mails and archives, numbers read off the decoded files with Python's email, gzip and
//! zipfile modules (noted in the table).
//!
//! Failure reports (ARF) are checked field by field: against mail-auth's JSON for its samples,
//! and against values read off the RFC examples and synthetic vectors by eye. SMTP TLS reports
//! have a test of their own (`tlsrpt_corpus.rs`).

mod common;

use std::path::{Path, PathBuf};

use dmarcpipe_store::{Outcome, Store};
use sqlx::PgPool;

/// A skipped corpus test says so where `cargo test` shows it, without `--nocapture`.
#[test]
fn a_corpus_test_without_the_corpus_says_it_skipped() {
    let test = "every_shared_report_is_stored_right_and_every_broken_one_refused";
    let output = std::process::Command::new(std::env::current_exe().expect("this test binary"))
        .args(["--exact", test])
        .env("DMARCPIPE_SHARED", "/nonexistent/shared")
        .output()
        .expect("the test binary runs");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&format!("SKIPPED {test}: /nonexistent/shared is absent")), "{said}");
}

/// (reports, records, messages) of a stored input.
type Counts = (i64, i64, i64);

/// `<record>` elements (any prefix) and the sum of `<count>` values, by scanning the text.
fn scan(xml: &str) -> Counts {
    let mut records = 0;
    let mut messages = 0;
    let mut rest = xml;
    while let Some(at) = rest.find('<') {
        rest = &rest[at + 1..];
        let name_end = rest.find(|c: char| c == '>' || c.is_whitespace()).unwrap_or(rest.len());
        let local = rest[..name_end].rsplit(':').next().unwrap_or_default();
        if rest.starts_with('/') {
            continue;
        }
        if local == "record" {
            records += 1;
        } else if local == "count" {
            let value = rest[name_end + 1..].split('<').next().unwrap_or_default().trim();
            messages += value.parse::<i64>().unwrap_or(0);
        }
    }
    (1, records, messages)
}

/// A file's text: UTF-16LE by its byte order mark, else UTF-8 (lossy).
fn text(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("readable");
    match bytes.strip_prefix(&[0xFF, 0xFE]) {
        Some(utf16) => {
            let units: Vec<u16> = utf16.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
            String::from_utf16_lossy(&units)
        }
        None => String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// Counts from mail-auth's own parse of the same sample (`NNN.json` beside `NNN.xml|eml`).
fn mail_auth(json: &Path) -> Counts {
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("mail-auth JSON")).expect("JSON");
    let records = value["record"].as_array().expect("records");
    let messages = records.iter().map(|r| r["row"]["count"].as_i64().expect("a count")).sum();
    (1, records.len() as i64, messages)
}

/// What each file must give.
fn expectations(shared: &Path) -> Vec<(PathBuf, Outcome, Option<Counts>)> {
    let mut cases = Vec::new();
    let corpus = shared.join("corpus");
    for entry in std::fs::read_dir(corpus.join("cry-inc/aggregate")).expect("readable") {
        let path = entry.expect("an entry").path();
        let counts = scan(&std::fs::read_to_string(&path).expect("XML"));
        cases.push((path, Outcome::Stored, Some(counts)));
    }
    for entry in std::fs::read_dir(corpus.join("mail-auth/dmarc-feedback")).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "xml" || e == "eml") {
            let counts = mail_auth(&path.with_extension("json"));
            cases.push((path, Outcome::Stored, Some(counts)));
        }
    }
    // Decoded with Python's email/gzip/zipfile modules and counted by hand.
    for (name, counts) in [
        ("google", (1, 2, 5)),
        ("mailru", (1, 1, 1)),
        ("outlook", (1, 1, 2)),
        ("xs4all", (1, 1, 1)),
        ("yahoo", (1, 1, 1)),
    ] {
        cases.push((corpus.join(format!("mox/aggregate/{name}.eml")), Outcome::Stored, Some(counts)));
    }
    // SMTP TLS reports: see tlsrpt_corpus.rs.
    let vectors = shared.join("standards/vectors");
    for name in ["rfc9990-appendix-b-sample.xml", "dmarcbis-wg-repo-dmarc-xmlalt-0.2.NONRFC.xml"] {
        let path = vectors.join(name);
        let counts = scan(&std::fs::read_to_string(&path).expect("XML"));
        cases.push((path, Outcome::Stored, Some(counts)));
    }
    // The RFC 7489 mail example carries the text "<gzipped content of report>".
    cases.push((vectors.join("rfc7489-appendix-b5-mailto-transport-example.eml"), Outcome::NotReport, None));
    let synthetic = vectors.join("synthetic");
    let refused = [
        "agg-xxe-external-entity.xml",
        "agg-billion-laughs.xml",
        "agg-external-dtd-doctype.xml",
        "agg-end-before-begin.xml",
    ];
    for entry in std::fs::read_dir(&synthetic).expect("readable") {
        let path = entry.expect("an entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.starts_with("tls-") {
            continue; // TLS reports: see tlsrpt_corpus.rs.
        }
        let case = if refused.contains(&name.as_str()) || name == "cont-truncated.xml.gz" {
            (Outcome::Rejected, None)
        } else if name == "cont-unused.xml.gz" {
            (Outcome::NotReport, None)
        } else if name.ends_with(".xml") {
            (Outcome::Stored, Some(scan(&text(&path))))
        } else if name == "cont-zip-two-xml-entries.zip" || name == "mail-x-zip-compressed.eml" {
            // Two copies of the baseline report under two report ids (decoded with zipfile).
            (Outcome::Stored, Some((2, 2, 6)))
        } else if name.starts_with("cont-") || name.starts_with("mail-") {
            // The baseline report of the generator: one record of three messages.
            (Outcome::Stored, Some((1, 1, 3)))
        } else {
            continue; // ARF samples: see the failure report test below.
        };
        cases.push((path, case.0, case.1));
    }
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn every_shared_report_is_stored_right_and_every_broken_one_refused(pool: PgPool) {
    let Some(shared) = common::shared("every_shared_report_is_stored_right_and_every_broken_one_refused") else {
        return;
    };
    let store = Store::from_pool(pool.clone());
    let mut failures = Vec::new();
    let cases = expectations(&shared);
    assert!(cases.len() > 70, "{} cases", cases.len());
    for (path, outcome, counts) in cases {
        let Some((name, _)) = common::ingest_case(&store, &shared, &path, outcome, &mut failures).await else {
            continue;
        };
        if let Some(expected) = counts {
            let stored: (i64, Option<i64>, Option<i64>) = sqlx::query_as(
                "SELECT count(*), sum(record_count)::bigint, sum(message_count)::bigint FROM dmarc_reports",
            )
            .fetch_one(&pool)
            .await
            .expect("counted");
            let rows: i64 =
                sqlx::query_scalar("SELECT count(*) FROM dmarc_records").fetch_one(&pool).await.expect("counted");
            let actual = (stored.0, stored.1.unwrap_or(0), stored.2.unwrap_or(0));
            if actual != expected || rows != expected.1 {
                failures.push(format!("{name}: stored {actual:?} ({rows} record rows), expected {expected:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The clear fields of a stored failure report, in the order of the query below.
#[derive(Debug, Default, PartialEq, sqlx::FromRow)]
struct ForensicFields {
    feedback_type: String,
    auth_failure: Option<String>,
    source_ip: Option<String>,
    reported_domain: Option<String>,
    reporting_mta: Option<String>,
    original_mail_from: Option<String>,
    dkim_domain: Option<String>,
    dkim_selector: Option<String>,
    delivery_result: Option<String>,
    identity_alignment: Option<String>,
    incidents: i64,
    /// Epoch seconds; `None` in an expectation means "not checked" (some samples lack the field
    /// and we fall back to the Date header, which mail-auth does not).
    arrival: Option<i64>,
}

/// mail-auth's parse of its ARF samples (`NNN.json`), mapped onto our columns.
fn mail_auth_forensic(json: &Path) -> ForensicFields {
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("mail-auth JSON")).expect("JSON");
    let text = |key: &str| value[key].as_str().map(str::to_owned);
    let word = |key: &str| match value[key].as_str() {
        None | Some("Unspecified") => None,
        Some("AuthFailure") => Some("auth-failure".to_owned()),
        Some(other) => Some(other.to_ascii_lowercase()),
    };
    ForensicFields {
        feedback_type: word("feedback_type").expect("a feedback type"),
        auth_failure: word("auth_failure"),
        source_ip: text("source_ip"),
        reported_domain: value["reported_domain"][0].as_str().map(str::to_owned),
        reporting_mta: text("reporting_mta"),
        original_mail_from: text("original_mail_from").map(|a| a.trim_matches(['<', '>']).to_owned()),
        dkim_domain: text("dkim_domain"),
        dkim_selector: text("dkim_selector"),
        delivery_result: word("delivery_result"),
        identity_alignment: None,
        incidents: value["incidents"].as_i64().expect("incidents"),
        arrival: value["arrival_date"].as_i64(),
    }
}

fn fields(
    feedback_type: &str,
    auth_failure: Option<&str>,
    source_ip: Option<&str>,
    domain: Option<&str>,
) -> ForensicFields {
    ForensicFields {
        feedback_type: feedback_type.into(),
        auth_failure: auth_failure.map(str::to_owned),
        source_ip: source_ip.map(str::to_owned),
        reported_domain: domain.map(str::to_owned),
        incidents: 1,
        ..ForensicFields::default()
    }
}

fn forensic_expectations(shared: &Path) -> Vec<(PathBuf, ForensicFields)> {
    let mut cases = Vec::new();
    let arf = shared.join("corpus/mail-auth/arf");
    for entry in std::fs::read_dir(&arf).expect("readable") {
        let path = entry.expect("an entry").path();
        if path.extension().is_some_and(|e| e == "eml") {
            let expected = mail_auth_forensic(&path.with_extension("json"));
            cases.push((path, expected));
        }
    }
    let vectors = shared.join("standards/vectors");
    let synthetic = vectors.join("synthetic");
    // Read off the files.
    cases.push((vectors.join("rfc5965-b1-simple-abuse-report.eml"), fields("abuse", None, None, None)));
    cases.push((
        vectors.join("rfc5965-b2-full-abuse-report.eml"),
        ForensicFields {
            reporting_mta: Some("mail.example.com".into()),
            original_mail_from: Some("somespammer@example.net".into()),
            arrival: Some(1_110_304_800), // Thu, 8 Mar 2005 14:00:00 EST
            ..fields("abuse", None, Some("192.0.2.1"), Some("example.net"))
        },
    ));
    cases.push((
        vectors.join("rfc6591-b1-auth-failure-dkim-bodyhash.eml"),
        ForensicFields {
            original_mail_from: Some("anexample.reply@a.sender.example".into()),
            dkim_domain: Some("sender.example".into()),
            dkim_selector: Some("testkey".into()),
            arrival: Some(1_318_104_958), // 8 Oct 2011 15:15:58 -0500
            ..fields("auth-failure", Some("bodyhash"), Some("192.0.2.1"), Some("a.sender.example"))
        },
    ));
    cases.push((
        vectors.join("rfc9991-appendix-a-dmarc-failure-report.eml"),
        ForensicFields {
            original_mail_from: Some("author=gen.example@forwarder.example".into()),
            dkim_domain: Some("consumer.example".into()),
            dkim_selector: Some("epsilon".into()),
            identity_alignment: Some("dkim".into()),
            ..fields("auth-failure", Some("dmarc"), Some("192.0.2.2"), Some("consumer.example"))
        },
    ));
    let synthetic_dmarc = |delivery: Option<&str>, alignment: &str, arrival: Option<i64>| ForensicFields {
        delivery_result: delivery.map(str::to_owned),
        identity_alignment: Some(alignment.into()),
        arrival,
        ..fields("auth-failure", Some("dmarc"), Some("192.0.2.99"), Some("example.com"))
    };
    cases.push((synthetic.join("arf-feedback-part-base64.eml"), synthetic_dmarc(Some("reject"), "none", None)));
    cases.push((
        synthetic.join("arf-identity-alignment-lists.eml"),
        synthetic_dmarc(Some("reject"), "dkim , spf", None),
    ));
    cases.push((
        synthetic.join("arf-received-date-historic-and-dup-arrival.eml"),
        synthetic_dmarc(None, "none", Some(1_700_046_001)),
    ));
    cases.push((
        synthetic.join("arf-source-ip-with-rdns-no-arrival-date.eml"),
        synthetic_dmarc(Some("reject"), "none", None),
    ));
    cases.push((
        synthetic.join("arf-exim-plaintext-no-feedback-part.eml"),
        ForensicFields {
            delivery_result: Some("reject".into()),
            arrival: Some(1_700_046_000),
            ..fields("auth-failure", Some("dmarc"), Some("192.0.2.98"), Some("example.com"))
        },
    ));
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

#[sqlx::test(migrator = "dmarcpipe_store::MIGRATOR")]
async fn every_shared_failure_report_is_stored_with_its_fields_and_sealed_mail(pool: PgPool) {
    let Some(shared) = common::shared("every_shared_failure_report_is_stored_with_its_fields_and_sealed_mail") else {
        return;
    };
    let (store, opener) = common::sealing_store(&pool);
    let mut failures = Vec::new();
    let cases = forensic_expectations(&shared);
    assert_eq!(cases.len(), 14);
    for (path, mut expected) in cases {
        let Some((name, result)) = common::ingest_case(&store, &shared, &path, Outcome::Stored, &mut failures).await
        else {
            continue;
        };
        if result.forensic_stored != 1 {
            failures.push(format!("{name}: {} failure reports", result.forensic_stored));
            continue;
        }
        let mut actual: ForensicFields = sqlx::query_as(
            "SELECT feedback_type, auth_failure, host(source_ip) AS source_ip, reported_domain, reporting_mta, \
                 original_mail_from, dkim_domain, dkim_selector, delivery_result, identity_alignment, incidents, \
                 extract(epoch FROM arrival_date)::bigint AS arrival \
             FROM dmarc_forensic",
        )
        .fetch_one(&pool)
        .await
        .expect("the report");
        if expected.arrival.is_none() {
            actual.arrival = None;
        }
        if expected.identity_alignment.is_none() {
            actual.identity_alignment = None;
        }
        if actual != expected {
            failures.push(format!("{name}:\n  stored   {actual:?}\n  expected {expected:?}"));
        }
        let sealed: Vec<u8> =
            sqlx::query_scalar("SELECT sealed FROM forensic_samples").fetch_one(&pool).await.expect("a sample");
        let raw = std::fs::read(&path).expect("readable");
        if opener.open(&sealed).expect("opened") != raw {
            failures.push(format!("{name}: the sealed sample is not the report mail"));
        }
        expected.arrival = None;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
