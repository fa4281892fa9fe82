//! The enricher against a real DNS server (dnsmasq on loopback) and MMDB files written by
//! MaxMind::DB::Writer: reverse DNS with forward confirmation, geography and network, the
//! sender from the confirmed name only (and from the stored answer when a lookup times out),
//! IPv4 and IPv6; files that are missing or corrupt are errors naming them.

use std::net::{IpAddr, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use dmarcpipe_ingest::enrich::dns::{DnsSettings, PtrStatus};
use dmarcpipe_ingest::enrich::enricher::{Enricher, EnricherError, EnricherSettings, KnownPtr, Tally, Task};
use dmarcpipe_ingest::enrich::geo::GeoPaths;
use dmarcpipe_ingest::testkit::dnsmasq::{DnsZone, Dnsmasq};
use dmarcpipe_ingest::testkit::mmdb::{geoip2_types, write_mmdb};
use serde_json::json;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn task(text: &str) -> Task {
    Task { ip: ip(text), known: KnownPtr::default() }
}

/// A GeoLite2-City layout file placing 192.0.2.0/24 in Berlin and 2001:db8::/32 in Paris, and
/// an ASN file giving 192.0.2.0/24 to AS64500.
fn databases(dir: &Path) -> GeoPaths {
    let city = dir.join("GeoLite2-City.mmdb");
    write_mmdb(
        &json!({
            "ip_version": 6, "database_type": "GeoLite2-City", "types": geoip2_types(),
            "networks": [
                ["192.0.2.0/24", {
                    "country": {"iso_code": "DE", "names": {"en": "Germany"}},
                    "city": {"names": {"en": "Berlin"}},
                    "location": {"latitude": 52.52, "longitude": 13.405},
                }],
                ["2001:db8::/32", {"country": {"iso_code": "FR"}, "city": {"names": {"en": "Paris"}}}],
            ],
        }),
        &city,
    )
    .expect("the city database");
    let asn = dir.join("GeoLite2-ASN.mmdb");
    write_mmdb(
        &json!({
            "ip_version": 6, "database_type": "GeoLite2-ASN", "types": geoip2_types(),
            "networks": [["192.0.2.0/24", {"autonomous_system_number": 64500, "autonomous_system_organization": "Example Net"}]],
        }),
        &asn,
    )
    .expect("the ASN database");
    GeoPaths { city: Some(city), country: None, asn: Some(asn) }
}

fn dns_at(server: std::net::SocketAddr, timeout: Duration) -> DnsSettings {
    DnsSettings { nameservers: vec![server], timeout, attempts: 1, ..DnsSettings::default() }
}

#[tokio::test]
async fn names_places_and_senders_of_a_batch() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut zone = DnsZone::new();
    zone.host(ip("192.0.2.10"), "mail-sor-f41.google.com")
        // A PTR that does not resolve back: not to be trusted for the sender.
        .ptr(ip("192.0.2.11"), "mail-b2.google.com")
        .host(ip("2001:db8::10"), "o1.ptr2.sendgrid.net");
    let server = Dnsmasq::start(&zone).expect("dnsmasq (scripts/packages.sh installs dnsmasq-base)");
    let settings = EnricherSettings {
        dns: Some(dns_at(server.addr(), Duration::from_secs(2))),
        geo: databases(dir.path()),
        geo_dir: None,
        senders_file: None,
    };
    let enricher = Enricher::new(&settings).expect("the enricher");
    assert!(enricher.has_dns());
    let tasks = [task("192.0.2.10"), task("192.0.2.11"), task("192.0.2.12"), task("2001:db8::10")];
    let found = enricher.enrich(&tasks).await;
    assert_eq!(found.iter().map(|e| e.ip).collect::<Vec<_>>(), tasks.iter().map(|t| t.ip).collect::<Vec<_>>());

    let google = &found[0];
    let answer = google.ptr.as_ref().expect("looked up");
    assert_eq!((answer.status, answer.name.as_deref()), (PtrStatus::Found, Some("mail-sor-f41.google.com")));
    assert_eq!((answer.confirmed, answer.base_domain.as_deref()), (Some(true), Some("google.com")));
    let geo = google.geo.as_ref().expect("located");
    assert_eq!((geo.country_code.as_deref(), geo.city.as_deref(), geo.asn), (Some("DE"), Some("Berlin"), Some(64500)));
    assert!(geo.geo_source.as_deref().is_some_and(|s| s.starts_with("GeoLite2-City")), "{geo:?}");
    assert!(geo.asn_source.as_deref().is_some_and(|s| s.starts_with("GeoLite2-ASN")), "{geo:?}");
    let sender = google.sender.as_ref().expect("a known sender");
    assert_eq!(sender.name, "Google (Gmail / Workspace)");
    assert!(sender.evidence.starts_with("ptr_base_domain google.com"), "{}", sender.evidence);

    let unconfirmed = &found[1];
    let answer = unconfirmed.ptr.as_ref().expect("looked up");
    assert_eq!((answer.status, answer.confirmed), (PtrStatus::Found, Some(false)));
    assert_eq!(unconfirmed.sender, None, "an unconfirmed name says nothing, and AS64500 is no known sender");

    let nothing = &found[2];
    assert_eq!(nothing.ptr.as_ref().map(|a| a.status), Some(PtrStatus::NxDomain));
    assert_eq!(nothing.geo.as_ref().and_then(|g| g.country_code.as_deref()), Some("DE"));

    let six = &found[3];
    assert_eq!(six.ptr.as_ref().and_then(|a| a.confirmed), Some(true));
    assert_eq!(six.sender.as_ref().map(|s| s.name.as_str()), Some("Twilio SendGrid"));
    let geo = six.geo.as_ref().expect("located");
    assert_eq!((geo.country_code.as_deref(), geo.asn), (Some("FR"), None));
    // No database knows its network: the source says what it was looked up in.
    assert!(geo.asn_source.as_deref().is_some_and(|s| s.starts_with("GeoLite2-City")), "{geo:?}");

    let mut tally = Tally::default();
    tally.add(&found);
    assert_eq!((tally.ips, tally.ptr_found, tally.ptr_confirmed, tally.ptr_nxdomain), (4, 3, 2, 1));
    assert_eq!((tally.with_country, tally.with_asn, tally.with_sender), (4, 3, 2));
}

#[tokio::test]
async fn a_timeout_is_transient_and_the_stored_name_still_names_the_sender() {
    // A nameserver that reads and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").expect("a socket");
    let settings = EnricherSettings {
        dns: Some(dns_at(silent.local_addr().expect("bound"), Duration::from_millis(300))),
        ..EnricherSettings::default()
    };
    let enricher = Enricher::new(&settings).expect("the enricher");
    let known = KnownPtr {
        name: Some("mail-sor-f41.google.com".into()),
        confirmed: Some(true),
        base_domain: Some("google.com".into()),
    };
    let tasks: Vec<Task> =
        (1..=50).map(|n| Task { ip: ip(&format!("198.51.100.{n}")), known: known.clone() }).collect();
    let started = Instant::now();
    let found = enricher.enrich(&tasks).await;
    assert!(started.elapsed() < Duration::from_secs(5), "bounded: {:?}", started.elapsed());
    assert!(found.iter().all(|e| e.ptr_transient() && e.ptr.as_ref().is_some_and(|a| a.status == PtrStatus::Timeout)));
    assert!(found.iter().all(|e| e.geo.is_none()), "no database: no geography");
    assert!(found.iter().all(|e| e.sender.as_ref().is_some_and(|s| s.name == "Google (Gmail / Workspace)")));
}

#[test]
fn missing_and_corrupt_files_are_errors_naming_them() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let corrupt = dir.path().join("country.mmdb");
    std::fs::write(&corrupt, b"not a database at all").expect("written");
    let settings = EnricherSettings {
        geo: GeoPaths { country: Some(corrupt.clone()), ..GeoPaths::default() },
        ..EnricherSettings::default()
    };
    let err = Enricher::new(&settings).expect_err("corrupt");
    assert!(matches!(err, EnricherError::Geo(_)));
    assert!(err.to_string().contains(&corrupt.display().to_string()), "{err}");

    let senders = dir.path().join("senders.csv");
    std::fs::write(&senders, "rule,value,service,kind\nptr_suffix,relay.example.com,Relays,no-such-kind\n")
        .expect("written");
    let settings = EnricherSettings { senders_file: Some(senders.clone()), ..EnricherSettings::default() };
    let err = Enricher::new(&settings).expect_err("bad kind");
    assert!(err.to_string().contains(&format!("{}, line 2", senders.display())), "{err}");

    let settings =
        EnricherSettings { senders_file: Some(dir.path().join("absent.csv")), ..EnricherSettings::default() };
    let err = Enricher::new(&settings).expect_err("missing");
    assert!(err.to_string().contains("absent.csv"), "{err}");
}
