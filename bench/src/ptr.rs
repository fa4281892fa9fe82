//! `make bench-ptr`: reverse DNS lookups per second against a local DNS server.
//!
//! Unbound on loopback (`testkit::unbound`) holds N (default 20,000) generated addresses from
//! the benchmarking range 198.18.0.0/15, each with a PTR name that resolves back to it; every
//! tenth address has no PTR (NXDOMAIN), as real sources often do. One
//! `ReverseResolver::lookup_many` with the default settings (64 in flight, 2 s timeout) looks
//! them all up; a lookup counts once, its forward confirmation included. Every answer is
//! checked against what was generated, so a fast wrong run fails instead of scoring. A second
//! pass over the same addresses shows the rate from the resolver's cache. The target
//! is 2,000 lookups/s.
//!
//! Why Unbound and not the tests' dnsmasq: dnsmasq walks its records for each PTR query and
//! answered about 170 a second over 20,000 hosts, whoever asked (a plain UDP client in Python
//! got the same rate); Unbound answered the same queries from that client at about 10,000 a
//! second, so what is measured here is our resolver.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::enrich::dns::{DnsSettings, PtrAnswer, PtrStatus, ReverseResolver};
use dmarcpipe_ingest::testkit::unbound::Unbound;

/// The target.
const TARGET_PER_SECOND: f64 = 2_000.0;
/// 198.18.0.0, the start of the benchmarking range (RFC 2544).
const FIRST_ADDRESS: u32 = 0xC612_0000;
/// Addresses in 198.18.0.0/15.
const RANGE_SIZE: u64 = 1 << 17;

fn address(index: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(FIRST_ADDRESS + index))
}

fn has_ptr(index: u32) -> bool {
    index % 10 != 9
}

fn host_name(index: u32) -> String {
    format!("o{index}.mta.bench.example.net")
}

/// The answers that are not what the zone says, as text (at most a few).
fn wrong_answers(answers: &[(IpAddr, PtrAnswer)]) -> Vec<String> {
    answers
        .iter()
        .enumerate()
        .filter(|(index, (_, answer))| {
            let index = *index as u32;
            if has_ptr(index) {
                answer.status != PtrStatus::Found
                    || answer.confirmed != Some(true)
                    || answer.name.as_deref() != Some(host_name(index).as_str())
            } else {
                answer.status != PtrStatus::NxDomain
            }
        })
        .take(5)
        .map(|(_, (ip, answer))| format!("{ip}: {answer:?}"))
        .collect()
}

pub fn run(lookups: u64) -> Result<()> {
    if lookups == 0 || lookups > RANGE_SIZE {
        bail!("--lookups must be from 1 to {RANGE_SIZE} (the addresses of 198.18.0.0/15), not {lookups}");
    }
    let count = lookups as u32;
    let hosts: Vec<(IpAddr, String)> =
        (0..count).filter(|&index| has_ptr(index)).map(|index| (address(index), host_name(index))).collect();
    let ips: Vec<IpAddr> = (0..count).map(address).collect();
    let server = Unbound::start(&hosts).context("starting unbound")?;
    let settings = DnsSettings { nameservers: vec![server.addr()], ..DnsSettings::default() };
    println!(
        "reverse DNS: {lookups} addresses ({} with a forward-confirmed PTR, the rest NXDOMAIN), unbound at {}, \
         {} in flight, timeout {:?} x {}",
        (0..count).filter(|&index| has_ptr(index)).count(),
        server.addr(),
        settings.concurrency,
        settings.timeout,
        settings.attempts
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let resolver = ReverseResolver::new(&settings)?;
    for pass in ["first lookups", "again (resolver cache)"] {
        let started = Instant::now();
        let answers = runtime.block_on(resolver.lookup_many(&ips));
        let seconds = started.elapsed().as_secs_f64();
        let wrong = wrong_answers(&answers);
        if !wrong.is_empty() {
            bail!("{pass}: wrong answers, for example:\n  {}", wrong.join("\n  "));
        }
        let rate = lookups as f64 / seconds;
        let verdict = if rate >= TARGET_PER_SECOND { "target met" } else { "TARGET MISSED" };
        println!("{pass}: {lookups} in {seconds:.2} s = {rate:.0} lookups/s ({verdict}: {TARGET_PER_SECOND:.0}/s)");
    }
    Ok(())
}
