//! The parser against every deviation it tolerates and everything it refuses.

use serde_json::{Value, json};

use super::*;

fn parse_bytes(bytes: &[u8], limits: &TlsLimits) -> Result<Opened, IngestError> {
    parse(&mut &bytes[..], limits, u64::MAX)
}

fn read(value: Value) -> TlsReport {
    match parse_bytes(value.to_string().as_bytes(), &TlsLimits::default()) {
        Ok(Opened::Report(report)) => *report,
        other => panic!("not a report: {other:?}"),
    }
}

fn refused(value: Value) -> String {
    match parse_bytes(value.to_string().as_bytes(), &TlsLimits::default()) {
        Err(err) => err.to_string(),
        other => panic!("not refused: {other:?}"),
    }
}

fn codes(report: &TlsReport) -> Vec<&'static str> {
    report.warnings.iter().map(|w| w.code).collect()
}

fn raw<'a>(raw: &'a [(String, String)], key: &str) -> Option<&'a str> {
    raw.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The RFC 8460 Appendix B example, with `mx-host` as its string and the URL joined.
fn rfc_example() -> Value {
    json!({
        "organization-name": "Company-X",
        "date-range": { "start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z" },
        "contact-info": "sts-reporting@company-x.example",
        "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
        "policies": [{
            "policy": {
                "policy-type": "sts",
                "policy-string": ["version: STSv1", "mode: testing", "mx: *.mail.company-y.example", "max_age: 86400"],
                "policy-domain": "company-y.example",
                "mx-host": "*.mail.company-y.example"
            },
            "summary": { "total-successful-session-count": 5326, "total-failure-session-count": 303 },
            "failure-details": [{
                "result-type": "certificate-expired",
                "sending-mta-ip": "2001:db8:abcd:0012::1",
                "receiving-mx-hostname": "mx1.mail.company-y.example",
                "receiving-ip": "203.0.113.55",
                "failed-session-count": 100
            }, {
                "result-type": "starttls-not-supported",
                "sending-mta-ip": "2001:db8:abcd:13::1",
                "receiving-mx-hostname": "mx2.mail.company-y.example",
                "receiving-mx-helo": "mx2.mail.company-y.example",
                "receiving-ip": "203.0.113.56",
                "failed-session-count": 200,
                "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3"
            }, {
                "result-type": "validation-failure",
                "sending-mta-ip": "198.51.100.62",
                "receiving-ip": "203.0.113.58",
                "receiving-mx-hostname": "mx-backup.mail.company-y.example",
                "failed-session-count": 3,
                "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"
            }]
        }]
    })
}

#[test]
fn every_field_of_the_rfc_example_is_read() {
    let report = read(rfc_example());
    assert_eq!(report.organization_name, "Company-X");
    assert_eq!(report.report_id, "5065427c-23d3-47ca-b6e0-946ea0e8c4be");
    assert_eq!(report.contact_info.as_deref(), Some("sts-reporting@company-x.example"));
    assert_eq!(report.date_begin.timestamp(), 1_459_468_800);
    assert_eq!(report.date_end.timestamp(), 1_459_555_199);
    assert_eq!((report.successful_sessions, report.failed_sessions, report.failure_detail_count), (5326, 303, 3));
    let policy = &report.policies[0];
    assert_eq!(policy.policy_type.as_deref(), Some("sts"));
    assert_eq!(policy.policy_strings.len(), 4);
    assert_eq!(policy.policy_domain.as_deref(), Some("company-y.example"));
    assert_eq!(policy.mx_hosts, ["*.mail.company-y.example"]);
    let [expired, starttls, validation] = &policy.failure_details[..] else { panic!("three failure details") };
    assert_eq!(expired.result_type, "certificate-expired");
    // Leading zeros in an IPv6 group: valid, written canonically, the original kept.
    assert_eq!(expired.sending_mta_ip.map(|ip| ip.to_string()).as_deref(), Some("2001:db8:abcd:12::1"));
    assert_eq!(raw(&expired.raw, "sending-mta-ip"), Some("2001:db8:abcd:0012::1"));
    assert_eq!(starttls.receiving_mx_helo.as_deref(), Some("mx2.mail.company-y.example"));
    assert_eq!(starttls.receiving_ip.map(|ip| ip.to_string()).as_deref(), Some("203.0.113.56"));
    assert!(starttls.additional_information.as_deref().is_some_and(|uri| uri.starts_with("https://")));
    assert_eq!(validation.failure_reason_code.as_deref(), Some("X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"));
    assert_eq!(policy.detailed_failures(), 303);
    assert_eq!(codes(&report), ["ip_normalized"]);
}

#[test]
fn google_shape_mx_host_array() {
    let mut value = rfc_example();
    value["policies"][0]["policy"]["mx-host"] = json!(["*.mail.company-y.example", "MX.Company-Y.example."]);
    let report = read(value);
    assert_eq!(report.policies[0].mx_hosts, ["*.mail.company-y.example", "mx.company-y.example"]);
    assert!(codes(&report).contains(&"mx_host_array"));
    assert!(codes(&report).contains(&"domain_normalized"));
    assert!(raw(&report.policies[0].raw, "policy.mx-host").is_some_and(|text| text.contains("MX.Company-Y")));
}

#[test]
fn microsoft_shape_missing_members_nested_tlsa_strings_and_no_offset() {
    let report = read(json!({
        "organization-name": "Microsoft Corporation",
        "date-range": { "start-datetime": "2026-11-01T00:00:00", "end-datetime": "2026-11-01T23:59:59" },
        "contact-info": "tlsrpt-noreply@microsoft.example",
        "report-id": "133925885310113267+example.com",
        "policies": [{
            "policy": { "policy-type": "sts", "policy-domain": "example.com" },
            "summary": { "total-successful-session-count": 0, "total-failure-session-count": 3 },
            "failure-details": [{ "result-type": "sts-policy-fetch-error", "failed-session-count": 3 }]
        }, {
            "policy": {
                "policy-type": "tlsa",
                "policy-string": ["[\"3 1 1 6007EEE5\",\"3 1 1 837C773D\"]"],
                "policy-domain": "example.com"
            },
            "summary": { "total-successful-session-count": 2, "total-failure-session-count": 0 }
        }]
    }));
    assert_eq!(report.date_begin.to_rfc3339(), "2026-11-01T00:00:00+00:00");
    assert_eq!(raw(&report.raw, "date-range.start-datetime"), Some("2026-11-01T00:00:00"));
    let codes = codes(&report);
    for code in ["datetime_no_offset", "member_missing", "policy_string_nested"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
    let missing: Vec<&str> =
        report.warnings.iter().filter(|w| w.code == "member_missing").map(|w| w.message.as_str()).collect();
    for member in ["policy-string", "mx-host", "sending-mta-ip", "receiving-mx-hostname", "receiving-ip"] {
        assert!(missing.iter().any(|m| m.contains(&format!("`{member}`"))), "{member} in {missing:?}");
    }
    assert_eq!(report.policies[1].policy_strings, ["3 1 1 6007EEE5", "3 1 1 837C773D"]);
    assert_eq!((report.successful_sessions, report.failed_sessions), (2, 3));
}

#[test]
fn numbers_as_strings_and_floats_are_read_and_kept_raw() {
    let mut value = rfc_example();
    value["policies"][0]["summary"] =
        json!({ "total-successful-session-count": "5326", "total-failure-session-count": 303.0 });
    value["policies"][0]["failure-details"][0]["failed-session-count"] = json!(" 100 ");
    let report = read(value);
    assert_eq!((report.successful_sessions, report.failed_sessions), (5326, 303));
    let policy = &report.policies[0];
    assert_eq!(raw(&policy.raw, "summary.total-successful-session-count"), Some("\"5326\""));
    assert_eq!(raw(&policy.raw, "summary.total-failure-session-count"), Some("303.0"));
    assert_eq!(raw(&policy.failure_details[0].raw, "failed-session-count"), Some("\" 100 \""));
    let strings = report.warnings.iter().find(|w| w.code == "number_as_string").expect("warned");
    assert_eq!(strings.count, 2, "one warning, counted");
    assert!(codes(&report).contains(&"number_format"));
}

#[test]
fn date_times_without_seconds_or_with_offsets() {
    let mut value = rfc_example();
    value["date-range"] =
        json!({ "start-datetime": "2016-04-01T02:00+02:00", "end-datetime": "2016-04-01T23:59:59-00:00" });
    let report = read(value);
    assert_eq!(report.date_begin.timestamp(), 1_459_468_800);
    assert_eq!(raw(&report.raw, "date-range.start-datetime"), Some("2016-04-01T02:00+02:00"));
    assert!(codes(&report).contains(&"datetime_no_seconds"));

    let mut value = rfc_example();
    value["date-range"]["start-datetime"] = json!("2016-04-01T01:00:00+01:00");
    assert!(codes(&read(value)).contains(&"datetime_offset"));
}

#[test]
fn mx_host_policy_lines_and_the_prose_member_names() {
    let mut value = rfc_example();
    value["policies"][0]["policy"] = json!({
        "policy-type": "sts",
        "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.server.example", "max_age: 86400"],
        "policy-domain": "server.example",
        "mx-host-pattern": ["mx: mx.server.example"]
    });
    let details = value["policies"][0]["failure-details"].as_array_mut().expect("an array");
    let uri = details[1].as_object_mut().expect("an object").remove("additional-information");
    details[1]["additional-info-uri"] = uri.expect("the RFC example has one");
    details[2].as_object_mut().expect("an object").remove("failure-reason-code");
    details[2]["failure-error-code"] = json!("X509_V_ERR_CERT_HAS_EXPIRED");
    let report = read(value);
    let policy = &report.policies[0];
    assert_eq!(policy.mx_hosts, ["mx.server.example"]);
    assert_eq!(raw(&policy.raw, "policy.mx-host"), Some("[\"mx: mx.server.example\"]"));
    assert!(policy.failure_details[1].additional_information.is_some());
    assert_eq!(policy.failure_details[2].failure_reason_code.as_deref(), Some("X509_V_ERR_CERT_HAS_EXPIRED"));
    let aliases = report.warnings.iter().find(|w| w.code == "member_alias").expect("aliases warned");
    assert!(aliases.message.contains("mx-host-pattern"), "{aliases:?}");
    assert!(codes(&report).contains(&"mx_host_prefixed"));
}

#[test]
fn contact_info_null_or_missing_and_org_from_contact() {
    let mut value = rfc_example();
    value["contact-info"] = Value::Null;
    let report = read(value);
    assert_eq!(report.contact_info, None);
    assert!(report.warnings.iter().any(|w| w.message == "`contact-info` is null in the report"));

    let mut value = rfc_example();
    value.as_object_mut().expect("an object").remove("organization-name");
    let report = read(value);
    assert_eq!(report.organization_name, "company-x.example");
    assert!(codes(&report).contains(&"org_name_derived"));
}

#[test]
fn unknown_result_and_policy_types_and_members_are_kept() {
    let mut value = rfc_example();
    value["policies"][0]["policy"]["policy-type"] = json!("invalid-policy-type");
    value["policies"][0]["failure-details"][0]["result-type"] = json!("some-future-type");
    value["policies"][0]["failure-details"][1]["result-type"] = json!("STARTTLS-Not-Supported");
    value["policies"][0]["failure-details"][0]["x-vendor-field"] = json!({ "a": 1 });
    value["x-generator"] = json!("reporter 2.1");
    let report = read(value);
    let policy = &report.policies[0];
    assert_eq!(policy.policy_type.as_deref(), Some("invalid-policy-type"));
    assert_eq!(policy.failure_details[0].result_type, "some-future-type");
    assert_eq!(policy.failure_details[1].result_type, "starttls-not-supported");
    assert_eq!(raw(&policy.failure_details[1].raw, "result-type"), Some("STARTTLS-Not-Supported"));
    assert_eq!(raw(&policy.failure_details[0].raw, "x-vendor-field"), Some("{\"a\":1}"));
    assert_eq!(raw(&report.raw, "x-generator"), Some("\"reporter 2.1\""));
    let codes = codes(&report);
    for code in ["policy_type_unknown", "result_type_unknown", "enum_case", "unknown_member"] {
        assert!(codes.contains(&code), "{code} in {codes:?}");
    }
}

#[test]
fn reports_without_policies_or_with_one_policy_object() {
    for policies in [None, Some(json!([])), Some(Value::Null)] {
        let mut value = rfc_example();
        match policies {
            Some(policies) => value["policies"] = policies,
            None => {
                value.as_object_mut().expect("an object").remove("policies");
            }
        }
        let report = read(value);
        assert!(report.policies.is_empty());
        assert_eq!(codes(&report), ["no_policies"]);
    }
    let mut value = rfc_example();
    value["policies"] = value["policies"][0].take();
    let report = read(value);
    assert_eq!(report.policies.len(), 1);
    assert!(codes(&report).contains(&"policies_not_array"));
}

#[test]
fn no_policy_found_without_domain_and_summary_without_failures() {
    let mut value = rfc_example();
    value["policies"] = json!([{
        "policy": { "policy-type": "no-policy-found" },
        "summary": { "total-successful-session-count": 1 }
    }]);
    let report = read(value);
    let policy = &report.policies[0];
    assert_eq!((policy.policy_domain.as_deref(), policy.failed_sessions), (None, 0));
    let missing: Vec<&str> =
        report.warnings.iter().filter(|w| w.code == "member_missing").map(|w| w.message.as_str()).collect();
    // A policy that was not found has no text and no MX patterns: not warned about.
    assert_eq!(missing, ["no `policy-domain` in a policy", "no `total-failure-session-count` in a summary"]);
}

#[test]
fn failure_totals_that_disagree_are_both_kept() {
    let mut value = rfc_example();
    value["policies"][0]["failure-details"][2]["failed-session-count"] = json!(4);
    let report = read(value);
    assert_eq!((report.failed_sessions, report.policies[0].detailed_failures()), (303, 304));
    assert!(codes(&report).contains(&"failure_totals_mismatch"));
}

#[test]
fn member_names_in_other_cases_and_with_underscores() {
    let value = json!({
        "Organization_Name": "Sender",
        "date_range": { "Start-DateTime": "2026-11-01T00:00:00Z", "end_datetime": "2026-11-01T23:59:59Z" },
        "contact-info": "tls@sender.example",
        "report-id": 4711,
        "policies": []
    });
    let report = read(value);
    assert_eq!((report.organization_name.as_str(), report.report_id.as_str()), ("Sender", "4711"));
    assert!(codes(&report).contains(&"member_alias"));
    assert!(codes(&report).contains(&"type_coerced"));
}

#[test]
fn addresses_that_are_not_addresses_are_kept_raw() {
    let mut value = rfc_example();
    value["policies"][0]["failure-details"][0]["sending-mta-ip"] = json!("mta.sender.example");
    let report = read(value);
    let detail = &report.policies[0].failure_details[0];
    assert_eq!(detail.sending_mta_ip, None);
    assert_eq!(raw(&detail.raw, "sending-mta-ip"), Some("mta.sender.example"));
    assert!(codes(&report).contains(&"ip_invalid"));
}

#[test]
fn byte_order_marks_and_stray_bytes() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    let mut value = rfc_example();
    value["organization-name"] = json!("Company-X \u{fffd}");
    bytes.extend(value.to_string().replace('\u{fffd}', "\u{1}").into_bytes());
    let at = bytes.iter().position(|&b| b == 1).expect("the marker");
    bytes[at] = 0xE9; // Latin-1 é
    let Ok(Opened::Report(report)) = parse_bytes(&bytes, &TlsLimits::default()) else { panic!("a report") };
    assert_eq!(report.organization_name, "Company-X \u{fffd}");
    let codes = codes(&report);
    assert!(codes.contains(&"encoding") && codes.contains(&"invalid_utf8"), "{codes:?}");
}

#[test]
fn nul_characters_are_replaced_wherever_they_are_escaped() {
    let mut value = rfc_example();
    value["organization-name"] = json!("Company\u{0}X");
    value["vendor\u{0}note"] = json!("a\u{0}b");
    // serde_json writes NUL as the escape `\u0000`; a preceding escaped backslash is not one.
    let text = value.to_string().replace("sts-reporting", "sts\\\\u0000reporting");
    let Ok(Opened::Report(report)) = parse_bytes(text.as_bytes(), &TlsLimits::default()) else { panic!("a report") };
    assert_eq!(report.organization_name, "Company\u{fffd}X");
    assert_eq!(raw(&report.raw, "vendor\u{fffd}note"), Some("\"a\u{fffd}b\""));
    assert_eq!(report.contact_info.as_deref(), Some("sts\\u0000reporting@company-x.example"));
    let warning = report.warnings.iter().find(|w| w.code == "nul_replaced").expect("a warning");
    assert!(warning.message.starts_with("3 NUL characters"), "{}", warning.message);
}

#[test]
fn what_the_database_could_not_sum_or_index_is_refused() {
    let mut value = rfc_example();
    value["policies"][0]["summary"]["total-successful-session-count"] = json!(MAX_REPORT_SESSIONS - 303);
    assert_eq!(read(value.clone()).successful_sessions + 303, MAX_REPORT_SESSIONS);
    value["policies"][0]["summary"]["total-failure-session-count"] = json!(304);
    assert!(refused(value).contains("the session counts add up to more than 1099511627776"));

    let mut value = rfc_example();
    let policy = value["policies"][0].clone();
    value["policies"] = json!([policy.clone(), policy]);
    value["policies"][1]["summary"]["total-successful-session-count"] = json!(i64::MAX);
    assert!(refused(value).contains("the session counts add up to more than"));

    let mut value = rfc_example();
    value["policies"][0]["failure-details"][0]["failed-session-count"] = json!(MAX_REPORT_SESSIONS);
    assert!(refused(value).contains("the failure details' session counts add up to more than"));

    let long = "x".repeat(600);
    let host = format!("{long}.example");
    for (path, text, what) in [
        (&["report-id"][..], &long, "`report-id` of 600 bytes is longer than 512"),
        (&["organization-name"], &long, "`organization-name` of 600 bytes"),
        (&["policies", "0", "policy", "policy-domain"], &host, "`policy-domain` of 608 bytes is longer than 253"),
        (&["policies", "0", "failure-details", "1", "receiving-mx-hostname"], &host, "`receiving-mx-hostname` of 608"),
        (&["policies", "0", "failure-details", "2", "result-type"], &long, "`result-type` of 600 bytes"),
    ] {
        let mut value = rfc_example();
        let slot = path.iter().fold(&mut value, |slot, key| match key.parse::<usize>() {
            Ok(index) => &mut slot[index],
            Err(_) => &mut slot[*key],
        });
        *slot = json!(text);
        let reason = refused(value);
        assert!(reason.contains(what), "{what}: {reason}");
    }
}

#[test]
fn a_report_larger_than_the_memory_left_is_not_read_on() {
    let text = rfc_example().to_string();
    let size = text.len() as u64;
    let enough = parse(&mut text.as_bytes(), &TlsLimits::default(), size * HELD_PER_BYTE);
    assert!(matches!(enough, Ok(Opened::Report(_))), "{enough:?}");
    match parse(&mut text.as_bytes(), &TlsLimits::default(), size * HELD_PER_BYTE - 1) {
        Ok(Opened::OverMemory(err)) => assert!(err.to_string().contains("of memory left for the input"), "{err}"),
        other => panic!("read on: {other:?}"),
    }
}

#[test]
fn reports_that_cannot_be_read_are_refused_with_the_reason() {
    let mut value = rfc_example();
    value.as_object_mut().expect("an object").remove("report-id");
    assert!(refused(value).contains("no `report-id`"));

    let mut value = rfc_example();
    value["date-range"]["end-datetime"] = json!("2016-03-31T00:00:00Z");
    assert!(refused(value).contains("ends"));

    let mut value = rfc_example();
    value["date-range"]["start-datetime"] = json!("the first of April");
    assert!(refused(value).contains("date-range.start-datetime"));

    let mut value = rfc_example();
    value["policies"][0]["summary"]["total-failure-session-count"] = json!(-3);
    let reason = refused(value);
    assert!(reason.contains("policies[0].summary.total-failure-session-count") && reason.contains("negative"));

    let mut value = rfc_example();
    value["policies"][0]["failure-details"][1]["failed-session-count"] = json!("many");
    assert!(refused(value).contains("policies[0].failure-details[1].failed-session-count"));

    let mut value = rfc_example();
    value["policies"][0]["failure-details"][1].as_object_mut().expect("an object").remove("result-type");
    assert!(refused(value).contains("no `result-type` in policies[0].failure-details[1]"));

    let mut value = rfc_example();
    value.as_object_mut().expect("an object").remove("organization-name");
    value.as_object_mut().expect("an object").remove("contact-info");
    assert!(refused(value).contains("reporter is unknown"));
}

#[test]
fn bad_json_is_refused_when_it_is_a_tls_report_and_skipped_otherwise() {
    let text = rfc_example().to_string().replace("\"Company-X\"", "\"Company\n-X\"");
    match parse_bytes(text.as_bytes(), &TlsLimits::default()) {
        Err(err) => {
            let reason = err.to_string();
            assert!(reason.contains("not valid JSON (line 2, column 0)"), "{reason}");
            assert!(reason.contains("control character"), "{reason}");
        }
        other => panic!("not refused: {other:?}"),
    }
    for text in ["[Preview] This is a DMARC report summary", "{ not json at all }"] {
        assert!(matches!(parse_bytes(text.as_bytes(), &TlsLimits::default()), Ok(Opened::NotTlsReport(_))), "{text}");
    }
    for text in [r#"{"name": "a package.json"}"#, r#"["version: STSv1"]"#] {
        let Ok(Opened::NotTlsReport(what)) = parse_bytes(text.as_bytes(), &TlsLimits::default()) else {
            panic!("{text}")
        };
        assert!(what.starts_with("JSON, not a report"), "{what}");
    }
}

#[test]
fn bombs_fail_fast_with_a_limit() {
    let deep = format!("{{\"policies\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let err = match parse_bytes(deep.as_bytes(), &TlsLimits::default()) {
        Err(err) => err,
        other => panic!("not refused: {other:?}"),
    };
    assert!(matches!(err, IngestError::Limit { .. }) && err.to_string().contains("nesting"), "{err}");

    let mut wide = String::from("{\"policies\": [");
    wide.push_str(&"0,".repeat(200_000));
    wide.push_str("0]}");
    let err = match parse_bytes(wide.as_bytes(), &TlsLimits::default()) {
        Err(err) => err,
        other => panic!("not refused: {other:?}"),
    };
    assert!(err.to_string().contains("members"), "{err}");

    let limits = TlsLimits { max_policies: 2, ..TlsLimits::default() };
    let mut value = rfc_example();
    let policy = value["policies"][0].clone();
    value["policies"] = json!([policy.clone(), policy.clone(), policy]);
    let Err(err) = parse_bytes(value.to_string().as_bytes(), &limits) else { panic!("three policies") };
    assert!(err.to_string().contains("3 policies exceeds the limit of 2 policies"), "{err}");

    let limits = TlsLimits { max_failure_details: 5, ..TlsLimits::default() };
    let mut value = rfc_example();
    let policy = value["policies"][0].clone();
    value["policies"] = json!([policy.clone(), policy]);
    let Err(err) = parse_bytes(value.to_string().as_bytes(), &limits) else { panic!("six failure details") };
    assert!(err.to_string().contains("failure details"), "{err}");
}

/// A report with `details` failure details.
fn report_with_failures(details: usize) -> Value {
    let mut value = rfc_example();
    let detail = value["policies"][0]["failure-details"][0].clone();
    value["policies"][0]["failure-details"] = Value::Array(vec![detail; details]);
    value["policies"][0]["summary"]["total-failure-session-count"] = json!(100 * details);
    value
}

/// What the store's memory route may hold for an input is respected: a small gzip that
/// unpacks to a large report, or many reports with many failure details, outgrow it (to be
/// streamed), and a reader with too little memory records the limit.
#[test]
fn tls_reports_count_against_what_an_input_may_hold() {
    use crate::envelope::{Envelope, Origin, Payload};
    use crate::inspect::{Contents, Outgrown, inspect, inspect_up_to};
    use crate::limits::Limits;
    use crate::testkit::{gzip, zip};

    let input = |name: &str, bytes: Vec<u8>| Envelope::new(Origin::File { path: name.into() }, Payload::Bytes(bytes));
    let large = report_with_failures(4_000).to_string();
    let packed = gzip(large.as_bytes());
    assert!(packed.len() < 64 << 10 && large.len() > 512 << 10, "{} bytes, {} packed", large.len(), packed.len());
    let limits = Limits::default();
    // Memory for 8 times the gzip: not for the report it holds.
    let memory = 8 * packed.len() as u64 + (256 << 10);
    assert_eq!(inspect_up_to(&input("big.json.gz", packed.clone()), &limits, usize::MAX, memory).err(), Some(Outgrown));
    let found = inspect_up_to(&input("big.json.gz", packed.clone()), &limits, usize::MAX, 64 << 20).expect("room");
    assert_eq!(found.tls.len(), 1);

    // Rows weigh like records: twenty reports of 5 rows each (one policy, three failures) are 100.
    let small = rfc_example().to_string();
    let names: Vec<String> = (0..20).map(|n| format!("r{n}.json")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|name| (name.as_str(), small.as_bytes())).collect();
    let archive = zip(&entries);
    assert!(inspect_up_to(&input("many.zip", archive.clone()), &limits, 100, 64 << 20).is_ok());
    assert_eq!(inspect_up_to(&input("many.zip", archive), &limits, 99, 64 << 20).err(), Some(Outgrown));

    // A reader that cannot read the input another way records the limit.
    let tight = Limits { max_memory: 4 << 20, ..Limits::default() };
    let found = inspect(&input("big.json.gz", packed), &tight);
    assert_eq!(found.verdict, Contents::Rejected);
    assert!(found.problems[0].content.to_string().contains("held 5 times over"), "{:?}", found.problems);
}
