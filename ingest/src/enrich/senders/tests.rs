//! Tests of the known senders: the built-in catalog (well formed, without conflicts, mapping
//! the sources of the sample reports), precedence, and the user file (overrides, errors).

use super::*;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

fn builtin() -> Catalog {
    Catalog::builtin().expect("the built-in catalog parses")
}

fn builtin_rows() -> Vec<Row> {
    parse_rows(BUILTIN_CSV, BUILTIN_FILE, Evidence::Required).expect("the built-in file parses")
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a test address")
}

/// The service name and kind `catalog` finds, for short assertions.
fn who(catalog: &Catalog, address: &str, ptr_name: Option<&str>, asn: Option<u32>) -> Option<(String, SenderKind)> {
    catalog.identify(ip(address), ptr_name, None, asn).map(|found| (found.name, found.kind))
}

fn named(name: &str, kind: SenderKind) -> Option<(String, SenderKind)> {
    Some((name.to_string(), kind))
}

/// A user file in a fresh directory.
fn user_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("senders.csv");
    let mut file = std::fs::File::create(&path).expect("the user file is created");
    file.write_all(contents.as_bytes()).expect("the user file is written");
    (dir, path)
}

/// The error of loading `contents` as a user file, with the file's path.
fn user_file_error(contents: &str) -> (SendersError, PathBuf) {
    let (_dir, path) = user_file(contents);
    let err = builtin().with_user_file(&path).expect_err("the user file is refused");
    (err, path)
}

/// The line and problem of a line error that names `path`.
fn line_problem(err: SendersError, path: &Path) -> (u64, LineProblem) {
    let text = err.to_string();
    assert!(text.starts_with(&path.display().to_string()), "the error names the file: {text}");
    match err {
        SendersError::Line { line, problem, .. } => {
            assert!(text.contains(&format!("line {line}:")), "the error names the line: {text}");
            (line, problem)
        }
        other => panic!("expected a line error, got {other}"),
    }
}

#[test]
fn builtin_covers_at_least_150_services_and_every_row_has_evidence() {
    let rows = builtin_rows();
    let services: BTreeSet<&str> = rows.iter().map(|row| row.service.as_str()).collect();
    assert!(services.len() >= 150, "only {} distinct services in the built-in catalog", services.len());
    for row in &rows {
        // Evidence says what the entry rests on: a sentence, not a word.
        assert!(
            row.evidence.len() >= 20 && row.evidence.contains(' '),
            "line {}: evidence too thin: {:?}",
            row.line,
            row.evidence
        );
    }
    assert_eq!(builtin().len(), rows.len(), "every row is a rule of its own");
    // Every kind is represented.
    let kinds: BTreeSet<&str> = rows.iter().map(|row| row.kind.as_str()).collect();
    for kind in SenderKind::ALL {
        assert!(kinds.contains(kind.as_str()), "no service of kind {kind}");
    }
}

#[test]
fn builtin_names_and_kinds_are_well_formed() {
    let rows = builtin_rows();
    let mut kinds_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut spellings: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for row in &rows {
        let name = row.service.as_str();
        assert_eq!(name, name.trim(), "line {}: padded name", row.line);
        assert!(!name.is_empty() && name.chars().count() <= 60, "line {}: name length: {name:?}", row.line);
        assert!(!name.contains("  ") && name.chars().all(|c| !c.is_control()), "line {}: name {name:?}", row.line);
        kinds_of.entry(name).or_default().insert(row.kind.as_str());
        spellings.entry(name.to_lowercase()).or_default().insert(name);
        // The evidence names what the rule matches, so that a reviewer can check it.
        let value = row.key.value();
        let mentioned = match &row.key {
            RuleKey::Asn(asn) => row.evidence.contains(&format!("AS{asn}")),
            _ => row.evidence.contains(&value),
        };
        assert!(mentioned, "line {}: the evidence does not mention {value}: {}", row.line, row.evidence);
    }
    for (name, kinds) in kinds_of {
        assert_eq!(kinds.len(), 1, "{name} has several kinds: {kinds:?}");
    }
    for (lower, names) in spellings {
        assert_eq!(names.len(), 1, "{lower} is spelt several ways: {names:?}");
    }
    for kind in SenderKind::ALL {
        assert_eq!(kind.as_str().parse::<SenderKind>(), Ok(kind));
        assert_eq!(kind.to_string(), kind.as_str());
    }
}

#[test]
fn builtin_has_no_conflicting_entries() {
    let rows = builtin_rows();
    // The same rule and value twice is refused by the parser itself: each key once.
    let keys: BTreeSet<String> =
        rows.iter().map(|row| format!("{} {}", row.key.rule().as_str(), row.key.value())).collect();
    assert_eq!(keys.len(), rows.len());

    // The same name as a suffix and as a base domain must mean the same service.
    let mut by_name: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for row in &rows {
        if let RuleKey::PtrSuffix(name) | RuleKey::PtrBaseDomain(name) = &row.key {
            by_name.entry(name.clone()).or_default().insert(&row.service);
        }
    }
    for (name, services) in &by_name {
        assert_eq!(services.len(), 1, "{name} maps to {services:?}");
    }

    // Overlapping networks must belong to the same service.
    let networks: Vec<(&IpNet, &Row)> = rows
        .iter()
        .filter_map(|row| match &row.key {
            RuleKey::Cidr(net) => Some((net, row)),
            _ => None,
        })
        .collect();
    assert!(networks.len() >= 20, "the documented ranges are listed");
    for (i, (a, row_a)) in networks.iter().enumerate() {
        for (b, row_b) in &networks[i + 1..] {
            if a.contains(*b) || b.contains(*a) {
                assert_eq!(
                    row_a.service, row_b.service,
                    "{a} (line {}) and {b} (line {}) overlap",
                    row_a.line, row_b.line
                );
            }
        }
    }

    // Networks must not be so wide that they swallow unrelated senders.
    for (net, row) in &networks {
        let widest = match net {
            IpNet::V4(_) => 8,
            IpNet::V6(_) => 32,
        };
        assert!(net.prefix_len() >= widest, "line {}: {net} is too wide", row.line);
    }
}

#[test]
fn the_data_file_is_the_one_compiled_in() {
    let on_disk = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("data/senders.csv"))
        .expect("ingest/data/senders.csv is readable");
    assert_eq!(on_disk, BUILTIN_CSV);
}

/// Sources of the sample reports (`samples/aggregate`, documentation addresses) with the PTR
/// names and ASNs such senders have in the real world, and what the catalog must make of them.
/// The generator gives each sample the same mix: the domain's own servers (192.0.2.x and IPv6),
/// an ESP (198.51.100.20-59), a forwarder (203.0.113.40-79), a mailing list (198.51.100.70-99),
/// a forwarder that broke DKIM (203.0.113.80-119) and spoofers (203.0.113.180-249).
struct SampleSource {
    sample: &'static str,
    ip: &'static str,
    ptr_name: Option<&'static str>,
    asn: Option<u32>,
    expected: Option<(&'static str, SenderKind)>,
}

const SAMPLE_SOURCES: &[SampleSource] = &[
    // google-zip-in-mail.eml: example.com on Google Workspace, SendGrid for news, a
    // MailChannels-relayed forward, spoofers.
    SampleSource {
        sample: "google-zip-in-mail.eml",
        ip: "192.0.2.17",
        ptr_name: Some("mail-sor-f41.google.com"),
        asn: Some(15169),
        expected: Some(("Google (Gmail / Workspace)", SenderKind::MailboxProvider)),
    },
    SampleSource {
        sample: "google-zip-in-mail.eml",
        ip: "2001:db8:86::7a",
        ptr_name: Some("mail-ej1-x62a.google.com."),
        asn: Some(15169),
        expected: Some(("Google (Gmail / Workspace)", SenderKind::MailboxProvider)),
    },
    SampleSource {
        sample: "google-zip-in-mail.eml",
        ip: "198.51.100.41",
        ptr_name: Some("o1.ptr1234.sendgrid.net"),
        asn: Some(11377),
        expected: Some(("Twilio SendGrid", SenderKind::Esp)),
    },
    SampleSource {
        sample: "google-zip-in-mail.eml",
        ip: "203.0.113.50",
        ptr_name: Some("bumble.birch.relay.mailchannels.net"),
        asn: Some(16509),
        expected: Some(("MailChannels", SenderKind::Forwarder)),
    },
    SampleSource {
        sample: "google-zip-in-mail.eml",
        ip: "203.0.113.211",
        ptr_name: Some("203-0-113-211.dynamic.broadband.example"),
        asn: Some(64500),
        expected: None,
    },
    SampleSource {
        sample: "google-zip-in-mail.eml",
        ip: "2001:db8:bad:8c::9c",
        ptr_name: None,
        asn: None,
        expected: None,
    },
    // outlook-xsi.xml: example.net on Microsoft 365, Amazon SES, a Proofpoint-relayed forward.
    SampleSource {
        sample: "outlook-xsi.xml",
        ip: "192.0.2.14",
        ptr_name: Some("mail-eopbgr80082.outbound.protection.outlook.com"),
        asn: Some(8075),
        expected: Some(("Microsoft 365 / Outlook.com", SenderKind::MailboxProvider)),
    },
    SampleSource {
        sample: "outlook-xsi.xml",
        ip: "2001:db8:73::db",
        ptr_name: Some("EUR05-DB8-obe.outbound.protection.outlook.com"),
        asn: Some(8075),
        expected: Some(("Microsoft 365 / Outlook.com", SenderKind::MailboxProvider)),
    },
    SampleSource {
        sample: "outlook-xsi.xml",
        ip: "198.51.100.33",
        ptr_name: Some("a8-31.smtp-out.amazonses.com"),
        asn: Some(14618),
        expected: Some(("Amazon SES", SenderKind::Esp)),
    },
    SampleSource {
        sample: "outlook-xsi.xml",
        ip: "203.0.113.66",
        ptr_name: Some("mx0a-00123456.pphosted.com"),
        asn: Some(26211),
        expected: Some(("Proofpoint", SenderKind::SecurityGateway)),
    },
    SampleSource {
        sample: "outlook-xsi.xml",
        ip: "203.0.113.119",
        ptr_name: Some("mail.forwarder.example"),
        asn: None,
        expected: None,
    },
    // yahoo.xml.gz: example.net on Yahoo, Mailchimp for news.
    SampleSource {
        sample: "yahoo.xml.gz",
        ip: "192.0.2.25",
        ptr_name: Some("sonic309-21.consmr.mail.ne1.yahoo.com"),
        asn: Some(10310),
        expected: Some(("Yahoo Mail", SenderKind::MailboxProvider)),
    },
    SampleSource {
        sample: "yahoo.xml.gz",
        ip: "198.51.100.38",
        ptr_name: Some("mail135-12.atl141.mcsv.net"),
        asn: Some(14782),
        expected: Some(("Intuit Mailchimp", SenderKind::Marketing)),
    },
    // amazonses-octet-stream.eml: Mandrill for news, an unknown forwarder without PTR.
    SampleSource {
        sample: "amazonses-octet-stream.eml",
        ip: "198.51.100.37",
        ptr_name: Some("mail128-5.atl41.mandrillapp.com"),
        asn: Some(14782),
        expected: Some(("Mailchimp Transactional (Mandrill)", SenderKind::Esp)),
    },
    SampleSource {
        sample: "amazonses-octet-stream.eml",
        ip: "203.0.113.43",
        ptr_name: None,
        asn: Some(64501),
        expected: None,
    },
    // fastmail.eml: example.com on Fastmail, SparkPost for news.
    SampleSource {
        sample: "fastmail.eml",
        ip: "192.0.2.22",
        ptr_name: Some("fout-a3-smtp.messagingengine.com"),
        asn: Some(151847),
        expected: Some(("Fastmail", SenderKind::MailboxProvider)),
    },
    SampleSource {
        sample: "fastmail.eml",
        ip: "198.51.100.22",
        ptr_name: Some("mta-174-22.sparkpostmail.com"),
        asn: Some(23528),
        expected: Some(("SparkPost (Bird)", SenderKind::Esp)),
    },
    // mailru.xml: Mail.ru, Mailgun for news.
    SampleSource {
        sample: "mailru.xml",
        ip: "198.51.100.53",
        ptr_name: Some("so254-16.mailgun.net"),
        asn: None,
        expected: Some(("Mailgun", SenderKind::Esp)),
    },
    // gmx-dmarc2.xml: GMX, Postmark for news, a Mimecast-relayed forward.
    SampleSource {
        sample: "gmx-dmarc2.xml",
        ip: "192.0.2.31",
        ptr_name: Some("mout.gmx.net"),
        asn: Some(8560),
        expected: Some(("GMX", SenderKind::MailboxProvider)),
    },
    SampleSource {
        sample: "gmx-dmarc2.xml",
        ip: "198.51.100.24",
        ptr_name: Some("mta200a-ord.mtasv.net"),
        asn: None,
        expected: Some(("Postmark", SenderKind::Esp)),
    },
    SampleSource {
        sample: "gmx-dmarc2.xml",
        ip: "203.0.113.60",
        ptr_name: Some("us-smtp-delivery-1.mimecast.com"),
        asn: Some(30031),
        expected: Some(("Mimecast", SenderKind::SecurityGateway)),
    },
    // several.mbox: Atlassian's dedicated SparkPost servers (the longer suffix wins over
    // SparkPost), Zendesk, and an EC2 machine of the domain's own.
    SampleSource {
        sample: "several.mbox",
        ip: "198.51.100.47",
        ptr_name: Some("mta-174-47.atlassian.net.sparkpostmail.com"),
        asn: Some(23528),
        expected: Some(("Atlassian Cloud", SenderKind::Crm)),
    },
    SampleSource {
        sample: "several.mbox",
        ip: "198.51.100.55",
        ptr_name: Some("outbyoip4.pod18.use1.zdsys.com"),
        asn: Some(16509),
        expected: Some(("Zendesk", SenderKind::Crm)),
    },
    SampleSource {
        sample: "several.mbox",
        ip: "192.0.2.39",
        ptr_name: Some("ec2-192-0-2-39.compute-1.amazonaws.com"),
        asn: Some(14618),
        expected: Some(("Amazon Web Services", SenderKind::Hosting)),
    },
    // multi-report.zip: a spoofer without PTR in Hetzner's network (only the ASN is known).
    SampleSource {
        sample: "multi-report.zip",
        ip: "203.0.113.239",
        ptr_name: None,
        asn: Some(24940),
        expected: Some(("Hetzner", SenderKind::Hosting)),
    },
];

/// The source addresses of a sample, from its golden expectation.
fn sample_sources(sample: &str) -> BTreeSet<String> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/aggregate").join(format!("{sample}.expected.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{} is readable: {err}", path.display()));
    let json: serde_json::Value = serde_json::from_str(&text).expect("the expectation is JSON");
    let mut found = BTreeSet::new();
    let mut stack = vec![&json];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(ip)) = map.get("source_ip") {
                    found.insert(ip.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

#[test]
fn maps_the_sources_of_the_sample_reports() {
    let catalog = builtin();
    for source in SAMPLE_SOURCES {
        assert!(
            sample_sources(source.sample).contains(source.ip),
            "{} is a source of samples/aggregate/{}",
            source.ip,
            source.sample
        );
        let found = catalog.identify(ip(source.ip), source.ptr_name, None, source.asn);
        let got = found.as_ref().map(|m| (m.name.as_str(), m.kind));
        assert_eq!(
            got, source.expected,
            "{} ({:?}, AS{:?}) in {}",
            source.ip, source.ptr_name, source.asn, source.sample
        );
        if let Some(found) = found {
            assert!(
                found.evidence.contains(BUILTIN_FILE) && found.evidence.contains(", line "),
                "the evidence names the rule's file and line: {}",
                found.evidence
            );
        }
    }
}

#[test]
fn the_evidence_names_the_rule_file_line_and_reason() {
    let catalog = builtin();
    let found = catalog
        .identify(
            ip("40.107.22.100"),
            Some("mail-eopbgr80082.outbound.protection.outlook.com"),
            Some("outlook.com"),
            None,
        )
        .expect("Microsoft 365 is known");
    let line = BUILTIN_CSV
        .lines()
        .position(|line| line.starts_with("ptr_suffix,outbound.protection.outlook.com,"))
        .expect("the rule is in the file")
        + 1;
    assert!(
        found
            .evidence
            .starts_with(&format!("ptr_suffix outbound.protection.outlook.com (built-in senders.csv, line {line}): ")),
        "{}",
        found.evidence
    );
    assert!(found.evidence.contains("Exchange Online"));
    // The README shows this very evidence (its first 120 characters, then "[…]").
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
        .expect("the README is readable");
    assert!(
        readme.contains(&found.evidence[..120]),
        "the README's Known senders section shows the evidence of this rule: {}",
        found.evidence
    );
}

#[test]
fn known_networks_and_asns_without_ptr() {
    let catalog = builtin();
    let google = named("Google (Gmail / Workspace)", SenderKind::MailboxProvider);
    let microsoft = named("Microsoft 365 / Outlook.com", SenderKind::MailboxProvider);
    let ses = named("Amazon SES", SenderKind::Esp);
    assert_eq!(who(&catalog, "209.85.220.41", None, None), google);
    assert_eq!(who(&catalog, "::ffff:209.85.220.41", None, None), google);
    assert_eq!(who(&catalog, "2a00:1450:4864:20::541", None, None), google);
    assert_eq!(who(&catalog, "40.107.22.100", None, None), microsoft);
    assert_eq!(who(&catalog, "2a01:111:f403:2613::800", None, None), microsoft);
    assert_eq!(who(&catalog, "54.240.8.31", None, Some(14618)), ses);
    // An AWS address outside SES's ranges, without a PTR name: hosting, not SES.
    assert_eq!(who(&catalog, "3.120.1.1", None, Some(16509)), named("Amazon Web Services", SenderKind::Hosting));
    // The ASN alone.
    assert_eq!(who(&catalog, "192.0.2.1", None, Some(11377)), named("Twilio SendGrid", SenderKind::Esp));
    assert_eq!(who(&catalog, "192.0.2.1", None, Some(15169)), google);
    // Microsoft's AS8075 also carries Azure customers: not mapped on its own.
    assert_eq!(who(&catalog, "192.0.2.1", None, Some(8075)), None);
    assert_eq!(who(&catalog, "192.0.2.1", None, None), None);
}

#[test]
fn ptr_rules_match_on_label_boundaries_only() {
    let catalog = builtin();
    assert_eq!(who(&catalog, "192.0.2.1", Some("mail.notgoogle.com"), None), None);
    assert_eq!(who(&catalog, "192.0.2.1", Some("google.com.evil.example"), None), None);
    // Case and the final dot do not matter.
    assert_eq!(
        who(&catalog, "192.0.2.1", Some("MAIL-SOR-F41.Google.COM."), None),
        named("Google (Gmail / Workspace)", SenderKind::MailboxProvider)
    );
    // The base domain alone is enough for a base-domain rule.
    let found = catalog.identify(ip("192.0.2.1"), None, Some("sendgrid.net"), None).map(|m| m.name);
    assert_eq!(found.as_deref(), Some("Twilio SendGrid"));
    // Comcast's home connections are not Comcast's mail servers.
    assert_eq!(who(&catalog, "192.0.2.1", Some("c-73-1-2-3.hsd1.ca.comcast.net"), None), None);
    assert_eq!(
        who(&catalog, "192.0.2.1", Some("resomta-po-01v.sys.comcast.net"), None),
        named("Comcast Xfinity Mail", SenderKind::MailboxProvider)
    );
}

#[test]
fn precedence_is_ptr_then_most_specific_network_then_asn() {
    let (_dir, path) = user_file(
        "rule,value,service,kind\n\
         cidr,209.85.220.0/24,Our relay in Google's range,other\n\
         cidr,203.0.113.0/24,Our network,other\n\
         cidr,203.0.113.128/25,Our branch office,other\n\
         asn,64500,Our AS,other\n",
    );
    let catalog = builtin().with_user_file(&path).expect("the user file loads");
    let google = named("Google (Gmail / Workspace)", SenderKind::MailboxProvider);
    // A name beats any network.
    assert_eq!(who(&catalog, "209.85.220.41", Some("mail-sor-f41.google.com"), None), google);
    // The most specific network wins, whichever file it is in.
    assert_eq!(
        who(&catalog, "209.85.220.41", None, Some(15169)),
        named("Our relay in Google's range", SenderKind::Other)
    );
    assert_eq!(who(&catalog, "209.85.221.41", None, Some(15169)), google);
    assert_eq!(who(&catalog, "203.0.113.200", None, Some(64500)), named("Our branch office", SenderKind::Other));
    assert_eq!(who(&catalog, "203.0.113.20", None, Some(64500)), named("Our network", SenderKind::Other));
    // A network beats the ASN; the ASN is the last resort.
    assert_eq!(who(&catalog, "198.51.100.1", None, Some(64500)), named("Our AS", SenderKind::Other));
    // An unknown PTR name falls through to the network.
    assert_eq!(
        who(&catalog, "203.0.113.20", Some("host.unknown.example"), None),
        named("Our network", SenderKind::Other)
    );
}

#[test]
fn a_user_file_overrides_and_extends() {
    let builtin_len = builtin().len();
    let (_dir, path) = user_file(
        "# Our own senders\n\
         rule,value,service,kind,evidence\n\
         ptr_base_domain,sendgrid.net,Acme mail via SendGrid,esp,our only SendGrid account\n\
         ptr_suffix,.relay.acme.example.,Acme relay,other,\n\
         asn,AS64500,Acme,other,our AS\n\
         cidr,2001:db8:ace::/48,Acme,other,\n",
    );
    let catalog = builtin().with_user_file(&path).expect("the user file loads");
    assert_eq!(catalog.len(), builtin_len + 3, "one override, three new rules");

    let found =
        catalog.identify(ip("192.0.2.1"), Some("o1.ptr1234.sendgrid.net"), None, None).expect("the override matches");
    assert_eq!(found.name, "Acme mail via SendGrid");
    assert_eq!(found.kind, SenderKind::Esp);
    assert_eq!(
        found.evidence,
        format!("ptr_base_domain sendgrid.net ({}, line 3): our only SendGrid account", path.display())
    );
    let found =
        catalog.identify(ip("192.0.2.1"), Some("out1.relay.acme.example"), None, None).expect("the new suffix matches");
    assert_eq!(found.name, "Acme relay");
    assert_eq!(found.evidence, format!("ptr_suffix relay.acme.example ({}, line 4)", path.display()));
    assert_eq!(who(&catalog, "192.0.2.1", None, Some(64500)), named("Acme", SenderKind::Other));
    assert_eq!(who(&catalog, "2001:db8:ace:1::25", None, None), named("Acme", SenderKind::Other));
    // What the user file does not touch is still there.
    assert_eq!(
        who(&catalog, "192.0.2.1", Some("a8-31.smtp-out.amazonses.com"), None),
        named("Amazon SES", SenderKind::Esp)
    );
}

#[test]
fn a_user_file_may_order_columns_freely_quote_and_start_with_a_bom() {
    let (_dir, path) = user_file(
        "\u{feff}kind,service,value,rule\n\
         crm,\"Acme Helpdesk, EU\",helpdesk.acme.example,ptr_suffix\n",
    );
    let catalog = builtin().with_user_file(&path).expect("the user file loads");
    assert_eq!(
        who(&catalog, "192.0.2.1", Some("mx1.helpdesk.acme.example"), None),
        named("Acme Helpdesk, EU", SenderKind::Crm)
    );
}

#[test]
fn bad_user_files_give_the_file_line_and_reason() {
    let header = "rule,value,service,kind,evidence\n";
    let cases: Vec<(String, u64, LineProblem)> = vec![
        (
            format!("{header}ptr_suffix,relay.acme.example,Acme,esp,\nasn,64500,Acme,newsletter,\n"),
            3,
            LineProblem::BadKind("newsletter".into()),
        ),
        (
            format!("{header}cidr,10.0.0.1/8,Acme,other,\n"),
            2,
            LineProblem::BadCidr {
                value: "10.0.0.1/8".into(),
                reason: "host bits are set (the network is 10.0.0.0/8)".into(),
            },
        ),
        (
            format!("{header}cidr,300.1.2.0/24,Acme,other,\n"),
            2,
            LineProblem::BadCidr {
                value: "300.1.2.0/24".into(),
                reason: "not an IPv4 or IPv6 network such as 192.0.2.0/24 or 2001:db8::/32".into(),
            },
        ),
        (
            format!("{header}asn,ASfoo,Acme,other,\n"),
            2,
            LineProblem::BadAsn { value: "ASfoo".into(), reason: "not a number such as 15169 or AS15169".into() },
        ),
        (
            format!("{header}asn,4294967296,Acme,other,\n"),
            2,
            LineProblem::BadAsn { value: "4294967296".into(), reason: "larger than 4294967295".into() },
        ),
        (
            format!("{header}asn,0,Acme,other,\n"),
            2,
            LineProblem::BadAsn { value: "0".into(), reason: "reserved: no network is announced by it".into() },
        ),
        ("rule,value,service\nasn,64500,Acme\n".to_string(), 1, LineProblem::MissingColumn("kind")),
        (
            "rule,value,service,kind,evidnce\nasn,64500,Acme,other,our AS\n".to_string(),
            1,
            LineProblem::UnknownColumn("evidnce".into()),
        ),
        (format!("# comment\n\n{header}asn,64500,Acme\n"), 4, LineProblem::MissingField("kind")),
        (format!("{header}asn,64500,,other,\n"), 2, LineProblem::MissingField("service")),
        (format!("{header}ptr_prefix,mail.acme.example,Acme,other,\n"), 2, LineProblem::BadRule("ptr_prefix".into())),
        (
            format!("{header}ptr_suffix,com,Everyone,other,\n"),
            2,
            LineProblem::BadDomain {
                value: "com".into(),
                reason: "a single label would match whole top-level domains; give at least two labels".into(),
            },
        ),
        (
            format!("{header}ptr_base_domain,acme..example,Acme,other,\n"),
            2,
            LineProblem::BadDomain { value: "acme..example".into(), reason: "empty label".into() },
        ),
        (
            format!(
                "{header}asn,64500,Acme,other,\n# a comment\nptr_suffix,relay.acme.example,Acme,other,\nasn,AS64500,Other,other,\n"
            ),
            5,
            LineProblem::Duplicate { rule: "asn", value: "64500".into(), first_line: 2 },
        ),
    ];
    for (contents, line, problem) in cases {
        let (err, path) = user_file_error(&contents);
        let text = err.to_string();
        assert_eq!(line_problem(err, &path), (line, problem), "for {contents:?}: {text}");
    }

    // An empty file has no header.
    let (err, path) = user_file_error("");
    assert_eq!(line_problem(err, &path), (1, LineProblem::MissingColumn("rule")));

    // A missing file is named.
    let missing = Path::new("/nonexistent/dmarcpipe/senders.csv");
    let err = builtin().with_user_file(missing).expect_err("a missing file is refused");
    assert!(matches!(err, SendersError::Read { .. }));
    assert!(err.to_string().starts_with("cannot read the senders file /nonexistent/dmarcpipe/senders.csv: "), "{err}");
}

#[test]
fn the_builtin_file_requires_evidence_and_names_itself() {
    let err = parse_rows("rule,value,service,kind,evidence\nasn,64500,Acme,other,\n", BUILTIN_FILE, Evidence::Required)
        .expect_err("evidence is required");
    assert_eq!(
        err.to_string(),
        "built-in senders.csv, line 2: no evidence: every built-in entry says what it rests on"
    );
    let err = parse_rows("rule,value,service,kind\n", BUILTIN_FILE, Evidence::Required)
        .expect_err("the evidence column is required");
    assert_eq!(
        err.to_string(),
        "built-in senders.csv, line 1: the header has no column `evidence` (the columns are \
         rule,value,service,kind,evidence)"
    );
}
