//! `dmarcpipe report --by host|sender|country|asn|location` and `--by source` with its details,
//! end to end: the samples imported by the binary, `source_ips` rows written here, the JSON,
//! CSV and table shapes, and the sums against the records.

mod common;

use common::{Dmarcpipe, EXCLUDE_EXPECTED, code, json, path, samples, scalar};
use serde_json::Value;
use sqlx::PgPool;

/// The samples' aggregate reports, and what enrichment would have found about two of their
/// sources (the others are not enriched).
async fn imported(pool: &PgPool) -> Dmarcpipe {
    let dmarcpipe = Dmarcpipe::on(pool);
    let output = dmarcpipe.run(&["import", "--quiet", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())]);
    assert!(code(&output) <= 1, "{}", String::from_utf8_lossy(&output.stderr));
    let (first, second): (String, String) = sqlx::query_as(
        "SELECT min(host(source_ip)), max(host(source_ip)) FROM dmarc_records WHERE family(source_ip) = 4",
    )
    .fetch_one(pool)
    .await
    .expect("two IPv4 sources");
    assert_ne!(first, second);
    sqlx::query("DELETE FROM source_ips WHERE ip IN ($1::inet, $2::inet)")
        .bind(&first)
        .bind(&second)
        .execute(pool)
        .await
        .expect("their queued rows removed");
    sqlx::query(
        "INSERT INTO source_ips (ip, ptr_name, ptr_base_domain, sender_name, sender_kind, country_code, country_name, \
             city, latitude, longitude, asn, as_org) VALUES \
         ($1::inet, 'mail-a.google.com', 'google.com', 'Google Workspace', 'mailbox_provider', 'US', 'United States', \
             'Mountain View', 37.751, -97.822, 15169, 'Google LLC'), \
         ($2::inet, NULL, NULL, NULL, NULL, 'VN', 'Viet Nam', NULL, NULL, NULL, NULL, NULL)",
    )
    .bind(&first)
    .bind(&second)
    .execute(pool)
    .await
    .expect("source_ips rows");
    dmarcpipe
}

fn rows(dmarcpipe: &Dmarcpipe, args: &[&str]) -> Vec<Value> {
    let output = dmarcpipe.run(args);
    assert_eq!(code(&output), 0, "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    json(&output).as_array().expect("an array of rows").clone()
}

fn text(dmarcpipe: &Dmarcpipe, args: &[&str]) -> String {
    let output = dmarcpipe.run(args);
    assert_eq!(code(&output), 0, "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).expect("UTF-8")
}

#[sqlx::test]
async fn rollups_by_what_is_known_of_sources_in_json_csv_and_tables(pool: PgPool) {
    let dmarcpipe = imported(&pool).await;
    let total = scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await;
    let google = scalar(
        &pool,
        "SELECT sum(message_count)::bigint FROM dmarc_records r JOIN source_ips i ON i.ip = r.source_ip \
         WHERE i.ptr_base_domain = 'google.com'",
    )
    .await;

    // location: numbers for a map, and one row of unknown points.
    let location = rows(&dmarcpipe, &["report", "--by", "location", "--format", "json"]);
    let keys: Vec<&str> = location[0].as_object().expect("an object").keys().map(String::as_str).collect();
    assert_eq!(&keys[..4], ["latitude", "longitude", "country", "city"]);
    assert!(keys.contains(&"sources") && keys.contains(&"dmarc_fail"), "{keys:?}");
    let point = location.iter().find(|row| row["latitude"] == 37.751).expect("the point");
    assert_eq!((point["longitude"].as_f64(), point["city"].as_str()), (Some(-97.822), Some("Mountain View")));
    assert_eq!(point["messages"].as_i64(), Some(google));
    assert_eq!(point["sources"].as_i64(), Some(1));
    let unknown = location.iter().find(|row| row["latitude"].is_null()).expect("unknown points");
    assert_eq!(unknown["messages"].as_i64(), Some(total - google));
    let sum: i64 = location.iter().map(|row| row["messages"].as_i64().expect("a count")).sum();
    assert_eq!(sum, total);

    // host, sender, country: unknown by name; asn: a number, empty when not known.
    for (key, known) in [("host", "google.com"), ("sender", "Google Workspace"), ("country", "US")] {
        let rows = rows(&dmarcpipe, &["report", "--by", key, "--format", "json"]);
        let named = rows.iter().find(|row| row[key] == known).expect("the known one");
        assert_eq!(named["messages"].as_i64(), Some(google), "by {key}");
        assert!(rows.iter().any(|row| row[key] == "unknown"), "by {key}: {rows:?}");
        let sum: i64 = rows.iter().map(|row| row["messages"].as_i64().expect("a count")).sum();
        assert_eq!(sum, total, "by {key}");
    }
    let country = rows(&dmarcpipe, &["report", "--by", "country", "--format", "json"]);
    assert!(country.iter().any(|row| row["country"] == "VN" && row["country_name"] == "Viet Nam"));
    let csv = text(&dmarcpipe, &["report", "--by", "asn", "--format", "csv"]);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "asn,as_org,messages,dmarc_pass,dmarc_fail,disposition_none,disposition_quarantine,disposition_reject,\
             dkim_aligned,spf_aligned,records,sources"
        )
    );
    assert!(csv.lines().any(|line| line.starts_with("15169,Google LLC,")), "{csv}");
    assert!(csv.lines().any(|line| line.starts_with(",,")), "unknown ASN: empty cells\n{csv}");
    let table = text(&dmarcpipe, &["report", "--by", "asn"]);
    assert!(table.lines().any(|line| line.trim_start().starts_with("unknown")), "{table}");

    // source: the address with its host, sender, country and ASN, then the counts.
    let csv = text(&dmarcpipe, &["report", "--by", "source", "--format", "csv"]);
    assert!(csv.starts_with("source,host,sender,country,asn,messages,"), "{csv}");
    assert!(csv.lines().next().is_some_and(|header| header.ends_with(",records,forensic")), "{csv}");
    let sources = rows(&dmarcpipe, &["report", "--by", "source", "--format", "json"]);
    let named = sources.iter().find(|row| row["host"] == "mail-a.google.com").expect("the enriched source");
    assert_eq!((named["sender"].as_str(), named["asn"].as_i64()), (Some("Google Workspace"), Some(15169)));
    assert!(sources.iter().any(|row| row["host"].is_null() && row["source"].is_string()));

    // Filters apply as to the other keys; TLS reports have no sources to group.
    let filtered =
        rows(&dmarcpipe, &["report", "--by", "host", "--domain", "no-such-domain.example", "--format", "json"]);
    assert!(filtered.is_empty(), "{filtered:?}");
    let output = dmarcpipe.run(&["report", "--tls", "--by", "country"]);
    assert_eq!(code(&output), 2, "{}", String::from_utf8_lossy(&output.stderr));
}
