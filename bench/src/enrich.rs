//! `make bench-enrich`: `dmarcpipe enrich` over 100,000 new source addresses, from MMDB files,
//! with reverse DNS off (the PTR lookup rate is `make bench-ptr`'s).
//!
//! A fresh database gets the addresses queued as imports queue them (one `source_ips` row
//! each, due at once: nine in ten from the benchmarking range 198.18.0.0/15, one in ten from
//! 2001:db8::/32, as the other benchmarks draw them). Two MMDB files are written with Debian's
//! MaxMind::DB::Writer (`ingest/tests/fixtures/write-mmdb.pl`): a GeoLite2-City layout with a
//! country, region, city and coordinates for each /23 of the IPv4 range and each /40 of the
//! IPv6 one, and a GeoLite2-ASN layout with a network for each /20. Then one run of the
//! release binary, `dmarcpipe enrich --no-dns --json` with those files as `[enrich]
//! city_db` and `asn_db`, is timed end to end (start, claims, lookups, writes), and the rows
//! are checked: every address enriched, with a country and an ASN. Target (issue 13): under
//! 5 seconds for 100,000 addresses.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::testkit::mmdb::{geoip2_types, write_mmdb};
use serde_json::{Value, json};

use crate::{create_database, drop_database, psql, psql_value};

const COUNTRIES: [&str; 12] = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "NL", "SE", "VN", "ZA", "AU"];

/// The /`prefix` networks of 198.18.0.0/15 and the /`prefix6` ones of the first 256 of
/// 2001:db8::/32, each with `record(index)`.
fn networks(prefix: u32, prefix6: u32, record: impl Fn(usize) -> Value) -> Vec<Value> {
    let v4 = (0..1u32 << (prefix - 15)).map(|n| {
        let base = (198u32 << 24 | 18 << 16) + (n << (32 - prefix));
        let address = std::net::Ipv4Addr::from(base);
        format!("{address}/{prefix}")
    });
    let v6 = (0..256u32).map(|n| format!("2001:db8:{:x}::/{prefix6}", n << (48 - prefix6)));
    v4.chain(v6).enumerate().map(|(index, network)| json!([network, record(index)])).collect()
}

fn city_spec() -> Value {
    json!({
        "ip_version": 6, "database_type": "GeoLite2-City", "description": "dmarcpipe bench city database",
        "types": geoip2_types(),
        "networks": networks(23, 40, |index| {
            let country = COUNTRIES[index % COUNTRIES.len()];
            json!({
                "country": {"iso_code": country, "names": {"en": country}},
                "subdivisions": [{"iso_code": "R1", "names": {"en": format!("Region {}", index % 50)}}],
                "city": {"names": {"en": format!("City {index}")}},
                "location": {"latitude": -60.0 + (index % 120) as f64, "longitude": -170.0 + (index % 340) as f64},
            })
        }),
    })
}

fn asn_spec() -> Value {
    json!({
        "ip_version": 6, "database_type": "GeoLite2-ASN", "description": "dmarcpipe bench ASN database",
        "types": geoip2_types(),
        "networks": networks(20, 40, |index| json!({
            "autonomous_system_number": 64_500 + index as u64,
            "autonomous_system_organization": format!("Network {index}"),
        })),
    })
}

pub(crate) fn run(binary: &Path, ips: u64) -> Result<()> {
    let work = std::env::temp_dir().join(format!("dmarcpipe-bench-enrich-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let (city, asn) = (work.join("city.mmdb"), work.join("asn.mmdb"));
    write_mmdb(&city_spec(), &city)?;
    write_mmdb(&asn_spec(), &asn)?;
    println!("wrote {} and {} with MaxMind::DB::Writer", city.display(), asn.display());
    let config = work.join("dmarcpipe.toml");
    std::fs::write(&config, format!("[enrich]\ndns = false\ncity_db = {city:?}\nasn_db = {asn:?}\n"))?;

    let (admin, database, url) = create_database(binary, "enrich")?;
    let result = (|| -> Result<()> {
        psql(
            &url,
            &format!(
                "INSERT INTO source_ips (ip) \
                 SELECT CASE WHEN n % 10 = 9 THEN '2001:db8::'::inet + n ELSE '198.18.0.0'::inet + n END \
                 FROM generate_series(0, {ips} - 1) n"
            ),
        )?;
        // Apart: VACUUM cannot run inside the transaction of a multi-statement `psql -c`.
        psql(&url, "VACUUM ANALYZE source_ips")?;
        let started = Instant::now();
        let output = Command::new(binary)
            .env("DATABASE_URL", &url)
            .arg("--config")
            .arg(&config)
            .args(["enrich", "--no-dns", "--json"])
            .output()
            .context("running dmarcpipe enrich")?;
        let seconds = started.elapsed().as_secs_f64();
        if !output.status.success() {
            bail!("enrich failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
        }
        let summary: Value = serde_json::from_slice(&output.stdout).context("the enrich summary")?;
        let enriched = summary["ips"].as_u64().unwrap_or(0);
        let located =
            psql_value(&url, "SELECT count(*) FROM source_ips WHERE country_code IS NOT NULL AND asn IS NOT NULL")?;
        let left = psql_value(&url, "SELECT count(*) FROM source_ips WHERE geo_looked_up IS NULL")?;
        if enriched != ips || located != ips.to_string() || left != "0" {
            bail!("{enriched} addresses enriched, {located} with a country and an ASN, {left} left, of {ips}");
        }
        println!(
            "enriched {ips} new source addresses from MMDB (city + ASN, DNS off) in {seconds:.2} s: {:.0} addresses/s \
             (target: under 5 s for 100,000); the binary's own count: {:.2} s",
            ips as f64 / seconds,
            summary["seconds"].as_f64().unwrap_or(0.0)
        );
        Ok(())
    })();
    drop_database(&admin, &database)?;
    let _ = std::fs::remove_dir_all(&work);
    result
}
