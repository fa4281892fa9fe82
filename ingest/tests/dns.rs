//! Reverse DNS against a real DNS server: dnsmasq on a loopback port, started by each test with
//! the records it needs (`testkit::dnsmasq`), and a UDP socket that swallows queries for the
//! timeouts. dnsmasq missing is a failure that says to run scripts/packages.sh, not a skip.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use dmarcpipe_ingest::enrich::dns::{
    DEFAULT_NEGATIVE_TTL, DnsError, DnsSettings, MIN_TTL, PtrAnswer, PtrStatus, ReverseResolver, TRANSIENT_TTL,
    parse_nameserver,
};
use dmarcpipe_ingest::testkit::dnsmasq::{DnsZone, Dnsmasq};

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a test address")
}

fn start(zone: &DnsZone) -> Dnsmasq {
    Dnsmasq::start(zone).unwrap_or_else(|error| panic!("cannot start the test DNS server: {error}"))
}

fn resolver(server: SocketAddr) -> ReverseResolver {
    let settings = DnsSettings { nameservers: vec![server], timeout: Duration::from_secs(2), ..DnsSettings::default() };
    ReverseResolver::new(&settings).expect("resolver")
}

fn found(
    names: &[&str],
    name: &str,
    confirmed: bool,
    base_domain: Option<&str>,
) -> (PtrStatus, Vec<String>, Option<String>, Option<bool>, Option<String>) {
    (
        PtrStatus::Found,
        names.iter().map(|n| n.to_string()).collect(),
        Some(name.to_string()),
        Some(confirmed),
        base_domain.map(str::to_string),
    )
}

fn summary(answer: &PtrAnswer) -> (PtrStatus, Vec<String>, Option<String>, Option<bool>, Option<String>) {
    (answer.status, answer.names.clone(), answer.name.clone(), answer.confirmed, answer.base_domain.clone())
}

#[tokio::test]
async fn ptr_found_and_forward_confirmed() {
    let mut zone = DnsZone::new();
    zone.host(ip("192.0.2.1"), "mail-1.Example.CO.UK").line("local-ttl=7200");
    let server = start(&zone);
    let answer = resolver(server.addr()).lookup(ip("192.0.2.1")).await;
    assert_eq!(summary(&answer), found(&["mail-1.example.co.uk"], "mail-1.example.co.uk", true, Some("example.co.uk")));
    assert_eq!(answer.ttl, Duration::from_secs(7200), "the record's TTL");
    assert_eq!(answer.detail, None);
    assert!(!answer.status.is_transient());
}

#[tokio::test]
async fn ptr_found_but_not_confirmed() {
    let mut zone = DnsZone::new();
    // The name resolves, but to another address.
    zone.ptr(ip("192.0.2.2"), "mail.google.com").address("mail.google.com", ip("192.0.2.200"));
    // The name does not resolve at all.
    zone.ptr(ip("192.0.2.3"), "ghost.example.com");
    let server = start(&zone);
    let resolver = resolver(server.addr());
    let elsewhere = resolver.lookup(ip("192.0.2.2")).await;
    assert_eq!(summary(&elsewhere), found(&["mail.google.com"], "mail.google.com", false, Some("google.com")));
    let nowhere = resolver.lookup(ip("192.0.2.3")).await;
    assert_eq!(summary(&nowhere), found(&["ghost.example.com"], "ghost.example.com", false, Some("example.com")));
    // Default local TTL 0: kept the shortest time allowed.
    assert_eq!(nowhere.ttl, MIN_TTL);
}

#[tokio::test]
async fn the_name_shown_is_the_first_confirmed_one() {
    let mut zone = DnsZone::new();
    zone.ptr(ip("192.0.2.4"), "first.example.net")
        .ptr(ip("192.0.2.4"), "second.example.net")
        .address("second.example.net", ip("192.0.2.4"))
        .address("first.example.net", ip("192.0.2.40"));
    let server = start(&zone);
    let answer = resolver(server.addr()).lookup(ip("192.0.2.4")).await;
    assert_eq!(answer.status, PtrStatus::Found);
    let mut names = answer.names.clone();
    names.sort();
    assert_eq!(names, ["first.example.net", "second.example.net"]);
    assert_eq!(answer.name.as_deref(), Some("second.example.net"));
    assert_eq!(answer.confirmed, Some(true));
    assert_eq!(answer.base_domain.as_deref(), Some("example.net"));
}

#[tokio::test]
async fn private_suffixes_do_not_make_a_host_its_own_base_domain() {
    let mut zone = DnsZone::new();
    zone.host(ip("192.0.2.5"), "ec2-192-0-2-5.compute-1.amazonaws.com");
    let server = start(&zone);
    let answer = resolver(server.addr()).lookup(ip("192.0.2.5")).await;
    assert_eq!(answer.confirmed, Some(true));
    assert_eq!(answer.base_domain.as_deref(), Some("amazonaws.com"));
}

#[tokio::test]
async fn no_ptr_is_nxdomain_and_cached() {
    let mut zone = DnsZone::new();
    zone.host(ip("192.0.2.1"), "mail.example.com");
    let server = start(&zone);
    let resolver = resolver(server.addr());
    let answer = resolver.lookup(ip("192.0.2.99")).await;
    assert_eq!(
        answer,
        PtrAnswer {
            status: PtrStatus::NxDomain,
            names: vec![],
            name: None,
            confirmed: None,
            base_domain: None,
            // dnsmasq sends no SOA with its NXDOMAIN.
            ttl: DEFAULT_NEGATIVE_TTL,
            detail: None,
        }
    );
    assert!(!answer.status.is_transient());
    let positive = resolver.lookup(ip("192.0.2.1")).await;
    assert_eq!(positive.confirmed, Some(true));

    // With the server gone, both answers still come from the resolver's cache.
    drop(server);
    assert_eq!(resolver.lookup(ip("192.0.2.99")).await.status, PtrStatus::NxDomain);
    assert_eq!(summary(&resolver.lookup(ip("192.0.2.1")).await), summary(&positive));
}

#[tokio::test]
async fn a_name_without_ptr_records_is_no_answer() {
    let mut zone = DnsZone::new();
    zone.line("txt-record=6.2.0.192.in-addr.arpa,not a ptr");
    let server = start(&zone);
    let answer = resolver(server.addr()).lookup(ip("192.0.2.6")).await;
    assert_eq!(answer.status, PtrStatus::NoAnswer);
    assert_eq!(answer.name, None);
    assert_eq!(answer.confirmed, None);
    assert!(!answer.status.is_transient());
}

#[tokio::test]
async fn ipv6_ptr_is_confirmed_by_aaaa() {
    let mut zone = DnsZone::new();
    zone.host(ip("2001:db8::25"), "mx6.example.org");
    // An IPv4 name for an IPv6 address does not confirm it.
    zone.ptr(ip("2001:db8::26"), "mx4.example.org").address("mx4.example.org", ip("192.0.2.26"));
    let server = start(&zone);
    let resolver = resolver(server.addr());
    let answer = resolver.lookup(ip("2001:db8::25")).await;
    assert_eq!(summary(&answer), found(&["mx6.example.org"], "mx6.example.org", true, Some("example.org")));
    let v4_only = resolver.lookup(ip("2001:db8::26")).await;
    assert_eq!(summary(&v4_only), found(&["mx4.example.org"], "mx4.example.org", false, Some("example.org")));
    assert_eq!(resolver.lookup(ip("2001:db8::27")).await.status, PtrStatus::NxDomain);
}

#[tokio::test]
async fn ipv4_mapped_ipv6_is_looked_up_as_ipv4() {
    let mut zone = DnsZone::new();
    zone.host(ip("192.0.2.7"), "mapped.example.com");
    let server = start(&zone);
    let answer = resolver(server.addr()).lookup(ip("::ffff:192.0.2.7")).await;
    assert_eq!(summary(&answer), found(&["mapped.example.com"], "mapped.example.com", true, Some("example.com")));
}

#[tokio::test]
async fn names_that_are_not_host_names_are_refused() {
    let mut zone = DnsZone::new();
    zone.ptr(ip("192.0.2.8"), "bad!name.example.com");
    zone.ptr(ip("192.0.2.9"), "bad!name.example.com")
        .ptr(ip("192.0.2.9"), "good.example.com")
        .address("good.example.com", ip("192.0.2.9"));
    let server = start(&zone);
    let resolver = resolver(server.addr());
    let bad = resolver.lookup(ip("192.0.2.8")).await;
    assert_eq!(bad.status, PtrStatus::Error);
    assert_eq!(bad.name, None);
    let detail = bad.detail.expect("a detail");
    assert!(detail.contains("name.example.com") && detail.contains("not a host name"), "{detail}");
    assert!(bad.status.is_transient());
    assert_eq!(bad.ttl, TRANSIENT_TTL);
    // A good name beside a bad one is kept, the bad one dropped.
    let mixed = resolver.lookup(ip("192.0.2.9")).await;
    assert_eq!(mixed.status, PtrStatus::Found);
    assert_eq!(mixed.names, ["good.example.com"]);
    assert_eq!(mixed.confirmed, Some(true));
}

#[tokio::test]
async fn many_addresses_are_all_answered_in_order() {
    let mut zone = DnsZone::new();
    let mut ips = Vec::new();
    for i in 0..500u32 {
        let address = IpAddr::V4(Ipv4Addr::from(0xC612_0000 + i)); // 198.18.0.0/15
        if i % 10 != 7 {
            zone.host(address, &format!("host-{i}.senders.example.net"));
        }
        ips.push(address);
    }
    let server = start(&zone);
    let settings = DnsSettings { nameservers: vec![server.addr()], concurrency: 32, ..DnsSettings::default() };
    let resolver = ReverseResolver::new(&settings).expect("resolver");
    let answers = resolver.lookup_many(&ips).await;
    assert_eq!(answers.len(), ips.len());
    for (i, (address, answer)) in answers.iter().enumerate() {
        assert_eq!(*address, ips[i], "answers come in the order asked");
        if i % 10 == 7 {
            assert_eq!(answer.status, PtrStatus::NxDomain, "{address}");
        } else {
            let name = format!("host-{i}.senders.example.net");
            assert_eq!(summary(answer), found(&[&name], &name, true, Some("example.net")), "{address}");
        }
    }
    assert!(resolver.lookup_many(&[]).await.is_empty());
}

/// A nameserver that reads every query and never answers.
async fn black_hole() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("a loopback UDP socket");
    let addr = socket.local_addr().expect("its address");
    let task = tokio::spawn(async move {
        let mut buffer = [0u8; 1500];
        while socket.recv_from(&mut buffer).await.is_ok() {}
    });
    (addr, task)
}

#[tokio::test]
async fn a_silent_nameserver_times_out_as_configured() {
    let (addr, task) = black_hole().await;
    let settings =
        DnsSettings { nameservers: vec![addr], timeout: Duration::from_millis(300), attempts: 1, concurrency: 16 };
    let resolver = ReverseResolver::new(&settings).expect("resolver");
    let started = Instant::now();
    let answer = resolver.lookup(ip("192.0.2.1")).await;
    // Bounded by the timeout (plus our backstop margin), far from a hang; generous for a busy machine.
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert_eq!(answer.status, PtrStatus::Timeout, "{answer:?}");
    assert!(answer.status.is_transient());
    assert_eq!(answer.ttl, TRANSIENT_TTL);
    assert_eq!(answer.name, None);

    // Many at once: all time out, none is lost, none is cached as an answer.
    let ips: Vec<IpAddr> = (1..=40u8).map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i))).collect();
    let answers = resolver.lookup_many(&ips).await;
    assert_eq!(answers.len(), 40);
    assert!(answers.iter().all(|(_, answer)| answer.status == PtrStatus::Timeout), "{answers:?}");
    task.abort();
}

#[tokio::test]
async fn a_timeout_is_not_cached() {
    let (addr, task) = black_hole().await;
    let settings =
        DnsSettings { nameservers: vec![addr], timeout: Duration::from_millis(200), attempts: 1, concurrency: 4 };
    let resolver = ReverseResolver::new(&settings).expect("resolver");
    assert_eq!(resolver.lookup(ip("192.0.2.1")).await.status, PtrStatus::Timeout);
    // Asked again, it asks the server again (and times out again), rather than remembering.
    let started = Instant::now();
    assert_eq!(resolver.lookup(ip("192.0.2.1")).await.status, PtrStatus::Timeout);
    assert!(started.elapsed() >= Duration::from_millis(150), "answered from a cache in {:?}", started.elapsed());
    task.abort();
}

#[test]
fn nameservers_parse_with_an_optional_port() {
    let cases = [
        ("192.0.2.53", "192.0.2.53:53"),
        ("127.0.0.1:5353", "127.0.0.1:5353"),
        (" 10.0.0.1 ", "10.0.0.1:53"),
        ("2001:db8::1", "[2001:db8::1]:53"),
        ("[2001:db8::1]:53", "[2001:db8::1]:53"),
        ("[2001:db8::1]:5300", "[2001:db8::1]:5300"),
        ("[::1]", "[::1]:53"),
    ];
    for (text, expected) in cases {
        let expected: SocketAddr = expected.parse().expect("a socket address");
        assert_eq!(parse_nameserver(text).expect(text), expected, "{text}");
    }
}

#[test]
fn bad_nameservers_are_refused_naming_the_text_and_the_reason() {
    let cases = [
        ("", "empty"),
        ("dns.example.com", "host name"),
        ("192.0.2.53:99999", "port"),
        ("192.0.2.53:", "port"),
        ("192.0.2.53:0", "port 0"),
        ("0.0.0.0", "unspecified"),
        ("[2001:db8::zz]", "inside the brackets"),
        ("300.1.2.3", "not an IP address"),
        ("2001:db8::1:53:77:88:99:11", "brackets"),
        ("2001:db8::1:53:77:88:99:11:12", "not an IP address"),
    ];
    for (text, reason) in cases {
        let error = parse_nameserver(text).expect_err(text);
        assert!(matches!(error, DnsError::BadNameserver { .. }), "{text}: {error:?}");
        let message = error.to_string();
        assert!(message.contains(&format!("`{text}`")) && message.contains(reason), "{text}: {message}");
    }
}

#[test]
fn bad_settings_are_refused() {
    let server = SocketAddr::new(ip("127.0.0.1"), 53);
    for (settings, setting) in [
        (DnsSettings { concurrency: 0, ..DnsSettings::default() }, "concurrency"),
        (DnsSettings { attempts: 0, ..DnsSettings::default() }, "attempts"),
        (DnsSettings { timeout: Duration::ZERO, ..DnsSettings::default() }, "timeout"),
    ] {
        let settings = DnsSettings { nameservers: vec![server], ..settings };
        let error = ReverseResolver::new(&settings).expect_err(setting);
        assert!(error.to_string().contains(setting), "{error}");
    }
}
