//! Enrichment end to end, with the binary: the samples imported, then `dmarcpipe enrich`
//! against a real DNS server (dnsmasq on loopback) and a country database written by
//! MaxMind::DB::Writer; `report --by country|sender|host` equal SQL over the records; `enrich
//! --all` backfills; `import` enriches what it stored at its end, warns once without a
//! geolocation database, and goes on when the DNS server never answers (the address is due
//! again later); bad `[enrich]` settings stop the command before anything is stored.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};

use common::{Dmarcpipe, EXCLUDE_EXPECTED, code, json, path, samples, scalar};
use dmarcpipe_ingest::testkit::ReportBuilder;
use dmarcpipe_ingest::testkit::dnsmasq::{DnsZone, Dnsmasq};
use dmarcpipe_ingest::testkit::mmdb::write_mmdb;
use serde_json::{Value, json};
use sqlx::PgPool;

const NOV_2: u64 = 1_793_577_600; // 2026-11-02T00:00:00Z

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A country database in the ip-location-db layout: each address given its country.
fn country_db(dir: &Path, countries: &[(IpAddr, &str)]) -> PathBuf {
    let networks: Vec<Value> = countries
        .iter()
        .map(|(ip, country)| {
            let length = if ip.is_ipv4() { 32 } else { 128 };
            json!([format!("{ip}/{length}"), {"country_code": country}])
        })
        .collect();
    let out = dir.join("country.mmdb");
    write_mmdb(
        &json!({"ip_version": 6, "database_type": "dbip-country", "types": {"country_code": "utf8_string"},
                "networks": networks}),
        &out,
    )
    .expect("the country database");
    out
}

/// A config file with `[enrich]` lines.
fn config(dir: &Path, lines: &str) -> PathBuf {
    let file = dir.join("dmarcpipe.toml");
    std::fs::write(&file, format!("[enrich]\n{lines}\n")).expect("the config");
    file
}

/// The binary with enrichment on, geolocation databases looked for in `geo_dir` by default.
fn enriching(pool: &PgPool, geo_dir: &Path) -> Dmarcpipe {
    Dmarcpipe::on(pool).env("DMARCPIPE_NO_ENRICH", "0").env("DMARCPIPE_GEOIP_DIR", path(geo_dir))
}

/// Messages per value of `column` of `source_ips` (`unknown` where none), over the records.
async fn by_sql(pool: &PgPool, column: &str) -> BTreeMap<String, i64> {
    let sql = format!(
        "SELECT coalesce(i.{column}, 'unknown'), sum(r.message_count)::bigint \
         FROM dmarc_records r LEFT JOIN source_ips i ON i.ip = r.source_ip GROUP BY 1"
    );
    // `column` is one of this file's literals.
    sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
        .expect("the SQL")
        .into_iter()
        .collect()
}

/// Messages per key of `report --by KEY --format json`.
fn by_report(dmarcpipe: &Dmarcpipe, key: &str) -> BTreeMap<String, i64> {
    let output = dmarcpipe.run(&["report", "--by", key, "--format", "json"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    json(&output)
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| (row[key].as_str().expect("a name").to_owned(), row["messages"].as_i64().expect("a count")))
        .collect()
}

#[sqlx::test]
async fn enriched_samples_roll_up_by_country_sender_and_host_as_sql_does(pool: PgPool) {
    let work = tempfile::tempdir().expect("a temp dir");
    let quiet = Dmarcpipe::on(&pool);
    let output = quiet.run(&["import", "--quiet", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())]);
    assert!(code(&output) <= 1, "{}", text(&output.stderr));
    let sources: Vec<IpAddr> = sqlx::query_scalar(
        "SELECT source_ip FROM dmarc_records WHERE source_ip IS NOT NULL GROUP BY 1 ORDER BY sum(message_count) DESC, 1",
    )
    .fetch_all(&pool)
    .await
    .expect("the sources");
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM source_ips").await,
        sources.len() as i64,
        "every source was queued by the import"
    );
    let v4: Vec<IpAddr> = sources.iter().copied().filter(IpAddr::is_ipv4).collect();
    assert!(v4.len() >= 3, "{sources:?}");
    let (google, sendgrid, forged) = (v4[0], v4[1], v4[2]);

    let mut zone = DnsZone::new();
    zone.host(google, "mail-sor-f41.google.com")
        .host(sendgrid, "o1.ptr2.sendgrid.net")
        // Claims Google but does not resolve back: a host, never a sender.
        .ptr(forged, "mail-forged.google.com");
    let server = Dnsmasq::start(&zone).expect("dnsmasq (scripts/packages.sh installs dnsmasq-base)");
    let database = country_db(work.path(), &[(google, "US"), (sendgrid, "VN")]);
    let config = config(
        work.path(),
        &format!("nameservers = [\"{}\"]\ntimeout_seconds = 2\ncountry_db = {:?}", server.addr(), path(&database)),
    );
    let dmarcpipe = enriching(&pool, work.path());
    let output = dmarcpipe.run(&["--config", path(&config), "enrich", "--json"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let summary = json(&output);
    assert_eq!(summary["ips"].as_i64(), Some(sources.len() as i64), "{summary}");
    assert_eq!((summary["ptr_found"].as_i64(), summary["ptr_confirmed"].as_i64()), (Some(3), Some(2)), "{summary}");
    assert_eq!(summary["ptr_nxdomain"].as_i64(), Some(sources.len() as i64 - 3), "{summary}");
    assert_eq!((summary["with_country"].as_i64(), summary["with_sender"].as_i64()), (Some(2), Some(2)), "{summary}");
    assert_eq!(summary["still_due"].as_i64(), Some(0));
    assert_eq!(summary["geolocation"][0].as_str().map(|s| s.starts_with("dbip-country")), Some(true), "{summary}");
    assert!(
        summary["attribution"][0].as_str().is_some_and(|line| line.contains("IP Geolocation by DB-IP")),
        "the licence's credit: {summary}"
    );

    let countries = by_report(&dmarcpipe, "country");
    assert_eq!(countries, by_sql(&pool, "country_code").await);
    assert!(countries.contains_key("US") && countries.contains_key("VN") && countries.contains_key("unknown"));
    let senders = by_report(&dmarcpipe, "sender");
    assert_eq!(senders, by_sql(&pool, "sender_name").await);
    assert_eq!(
        senders.keys().map(String::as_str).collect::<Vec<_>>(),
        ["Google (Gmail / Workspace)", "Twilio SendGrid", "unknown"]
    );
    let hosts = by_report(&dmarcpipe, "host");
    assert_eq!(hosts, by_sql(&pool, "ptr_base_domain").await);
    assert_eq!(hosts.keys().map(String::as_str).collect::<Vec<_>>(), ["google.com", "sendgrid.net", "unknown"]);

    // Nothing is due any more; --all looks at every address again, and queues the sources of
    // records stored before the queue existed.
    let output = dmarcpipe.run(&["--config", path(&config), "enrich", "--json", "--no-dns"]);
    assert_eq!(json(&output)["ips"].as_i64(), Some(0), "{}", text(&output.stderr));
    sqlx::query("DELETE FROM source_ips WHERE ip = $1").bind(forged).execute(&pool).await.expect("deleted");
    let output = dmarcpipe.run(&["--config", path(&config), "enrich", "--all", "--no-dns", "--json"]);
    let summary = json(&output);
    assert_eq!((summary["queued"].as_i64(), summary["ips"].as_i64()), (Some(1), Some(sources.len() as i64)));
    assert_eq!(summary["dns"], Value::Bool(false));
    // Without DNS the names stay, and so do the senders found from them.
    assert_eq!(by_report(&dmarcpipe, "sender"), senders);
}

#[sqlx::test]
async fn import_enriches_what_it_stored_and_warns_once_without_a_database(pool: PgPool) {
    let work = tempfile::tempdir().expect("a temp dir");
    let mut zone = DnsZone::new();
    zone.host("192.0.2.10".parse().expect("ip"), "mail-sor-f41.google.com");
    let server = Dnsmasq::start(&zone).expect("dnsmasq (scripts/packages.sh installs dnsmasq-base)");
    let config = config(work.path(), &format!("nameservers = [\"{}\"]", server.addr()));
    let report = ReportBuilder::new("Reporter", "r-1", "example.com", NOV_2)
        .record("192.0.2.10", 40, "none", "pass", "pass")
        .record("192.0.2.12", 2, "reject", "fail", "fail");
    let file = work.path().join("report.xml");
    std::fs::write(&file, report.xml()).expect("written");

    let empty_geo_dir = work.path().join("geoip");
    let dmarcpipe = enriching(&pool, &empty_geo_dir);
    let output = dmarcpipe.run(&["--config", path(&config), "import", path(&file)]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("enriched 2 source addresses"), "{stderr}");
    assert!(stderr.contains("PTR 1 found (1 confirmed), 1 nxdomain"), "{stderr}");
    assert_eq!(stderr.matches("No geolocation database").count(), 1, "{stderr}");
    assert!(stderr.contains("dmarcpipe geoip fetch") && stderr.contains(path(&empty_geo_dir)), "{stderr}");
    let (sender, status, country): (Option<String>, Option<String>, Option<String>) =
        sqlx::query_as("SELECT sender_name, ptr_status, country_code FROM source_ips WHERE ip = '192.0.2.10'")
            .fetch_one(&pool)
            .await
            .expect("the row");
    assert_eq!(
        (sender.as_deref(), status.as_deref(), country),
        (Some("Google (Gmail / Workspace)"), Some("found"), None)
    );
    assert_eq!(by_report(&dmarcpipe, "country"), BTreeMap::from([("unknown".to_owned(), 42)]));

    // --no-enrich leaves them queued.
    let again =
        ReportBuilder::new("Reporter", "r-2", "example.com", NOV_2).record("192.0.2.20", 1, "none", "pass", "pass");
    std::fs::write(&file, again.xml()).expect("written");
    let output = dmarcpipe.run(&["--config", path(&config), "import", "--no-enrich", path(&file)]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    assert!(!text(&output.stderr).contains("enriched"), "{}", text(&output.stderr));
    assert_eq!(scalar(&pool, "SELECT count(*) FROM source_ips WHERE enrich_due <= now()").await, 1);
}

#[sqlx::test]
async fn a_dns_server_that_never_answers_delays_the_address_not_the_import(pool: PgPool) {
    let work = tempfile::tempdir().expect("a temp dir");
    let silent = UdpSocket::bind("127.0.0.1:0").expect("a socket that reads and never answers");
    let config = config(
        work.path(),
        &format!("nameservers = [\"{}\"]\ntimeout_seconds = 0.3", silent.local_addr().expect("bound")),
    );
    let dmarcpipe = enriching(&pool, work.path());
    for (id, source) in [("t-1", "192.0.2.30"), ("t-2", "192.0.2.31")] {
        let report = ReportBuilder::new("Reporter", id, "example.com", NOV_2).record(source, 5, "none", "pass", "fail");
        let file = work.path().join(format!("{id}.xml"));
        std::fs::write(&file, report.xml()).expect("written");
        let output = dmarcpipe.run(&["--config", path(&config), "import", path(&file)]);
        assert_eq!(code(&output), 0, "{}", text(&output.stderr));
        let stderr = text(&output.stderr);
        assert!(stderr.contains("1 stored") && stderr.contains("1 timeout"), "{stderr}");
        assert!(stderr.contains("retried later"), "{stderr}");
    }
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 2, "both imports stored their report");
    let rows: Vec<(String, Option<String>, i32, f64)> = sqlx::query_as(
        "SELECT host(ip), ptr_status, ptr_failures, extract(epoch FROM enrich_due - now())::float8 \
         FROM source_ips ORDER BY ip",
    )
    .fetch_all(&pool)
    .await
    .expect("rows");
    for (ip, status, failures, due_in) in rows {
        assert_eq!((status.as_deref(), failures), (Some("timeout"), 1), "{ip}");
        assert!((200.0..=330.0).contains(&due_in), "{ip} is due again after the backoff, in {due_in} s");
    }
    // Not due now: a plain `enrich` leaves them for later.
    let output = dmarcpipe.run(&["--config", path(&config), "enrich", "--json"]);
    assert_eq!(json(&output)["ips"].as_i64(), Some(0), "{}", text(&output.stderr));
}

#[sqlx::test]
async fn bad_enrich_settings_stop_the_command_naming_the_file_and_key(pool: PgPool) {
    let work = tempfile::tempdir().expect("a temp dir");
    let dmarcpipe = enriching(&pool, work.path());
    let garbage = work.path().join("garbage.mmdb");
    std::fs::write(&garbage, b"this is not an MMDB file").expect("written");
    for (lines, expected) in [
        ("concurrency = 0", "[enrich] concurrency (or DMARCPIPE_ENRICH_CONCURRENCY): 0 is not"),
        ("nameservers = [\"dns.example\"]", "nameserver `dns.example`"),
        ("timeout_seconds = -2", "[enrich] timeout_seconds"),
        (&format!("country_db = {:?}", path(&work.path().join("absent.mmdb"))), "absent.mmdb: no such file"),
        (&format!("city_db = {:?}", path(&garbage)), "garbage.mmdb: not a MaxMind DB"),
        ("dns = \"sometimes\"", "invalid config file"),
    ] {
        let config = config(work.path(), lines);
        for command in [&["enrich"][..], &["import", path(&samples().join("outlook-xsi.xml"))][..]] {
            let mut args = vec!["--config", path(&config)];
            args.extend_from_slice(command);
            let output = dmarcpipe.run(&args);
            let stderr = text(&output.stderr);
            assert_eq!(code(&output), 2, "{lines} {command:?}: {stderr}");
            assert!(stderr.contains(expected) && stderr.contains("dmarcpipe.toml"), "{lines} {command:?}: {stderr}");
        }
    }
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await, 0, "nothing was imported");
}

/// Queues `count` addresses 10.0.x.y, due at once.
async fn queue_addresses(pool: &PgPool, count: i64) {
    sqlx::query("INSERT INTO source_ips (ip) SELECT '10.0.0.0'::inet + n FROM generate_series(1, $1) n")
        .bind(count)
        .execute(pool)
        .await
        .expect("queued");
}

#[sqlx::test]
async fn batches_written_while_the_next_is_looked_up_are_all_recorded_before_the_end(pool: PgPool) {
    // More than two offline batches (10,000 each), so that writes overlap lookups.
    queue_addresses(&pool, 25_000).await;
    let work = tempfile::tempdir().expect("a temp dir");
    let dmarcpipe = enriching(&pool, work.path());
    let output = dmarcpipe.run(&["enrich", "--no-dns", "--limit", "15000", "--json"]);
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let summary = json(&output);
    assert_eq!((summary["ips"].as_i64(), summary["still_due"].as_i64()), (Some(15_000), Some(10_000)), "{summary}");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM source_ips WHERE sender_looked_up IS NOT NULL").await, 15_000);

    // Two enrichers at once share the rest: every address once.
    let enrich = || dmarcpipe.command(&["enrich", "--no-dns", "--json"]).stdout(std::process::Stdio::piped()).spawn();
    let (first, second) = (enrich().expect("first starts"), enrich().expect("second starts"));
    let (first, second) = (first.wait_with_output().expect("first"), second.wait_with_output().expect("second"));
    assert_eq!((code(&first), code(&second)), (0, 0), "{} {}", text(&first.stderr), text(&second.stderr));
    let done = json(&first)["ips"].as_i64().expect("ips") + json(&second)["ips"].as_i64().expect("ips");
    assert_eq!(done, 10_000, "no address enriched twice");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM source_ips WHERE sender_looked_up IS NULL").await, 0);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM source_ips WHERE enrich_due <= now()").await, 0);
}
