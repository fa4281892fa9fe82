//! `make bench-rollups`: every rollup key of `dmarcpipe report` over 10 million records from
//! 100,000 distinct source addresses, with `source_ips` filled as enrichment would.
//!
//! The data is generated in the database (generate_series, about two minutes): a year of
//! reports (2025-12-01 to 2026-11-30), one per day, policy domain (3) and reporter (20), the
//! reporter of rank j getting a share 1/j² of the day's records, as the big mailbox
//! providers do; sources drawn log-uniformly over the 100,000 addresses (a few send most mail,
//! most are seen a few times), each address at least once; the rollup rows as the store
//! appends them, one per report and key. `source_ips`: 2,000 host domains, 150 senders, 200
//! countries, 5,000 networks, 20,000 points, with addresses not looked up and lookups that
//! found nothing.
//!
//! Then each key is timed end to end (`dmarcpipe report --by KEY --format csv`, release
//! binary, median of five runs) without filters, with --domain, with --since (the last
//! month) and with a month-long --since/--until, after compaction; before it (the rows as
//! appended, with compaction kept out: another session holds its lock), without filters and
//! median of three. Between the two, the first report compacts. `--database NAME` times a
//! database kept by an earlier run (`--keep`) as it is: after compaction only.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

use crate::{GeneratedData, psql, psql_value};

const KEYS: [&str; 10] = ["result", "org", "domain", "day", "source", "host", "sender", "country", "asn", "location"];

/// The filters each key is timed with.
const FILTERS: [(&str, &[&str]); 4] = [
    ("all data", &[]),
    ("--domain", &["--domain", "example2.com"]),
    ("--since 30d", &["--since", "2026-11-01"]),
    ("a month", &["--since", "2026-09-15", "--until", "2026-10-15"]),
];

/// Runs per key and filter (the median is shown); before compaction, fewer and without
/// filters, as each takes seconds.
const RUNS: usize = 5;
const RUNS_BEFORE: usize = 3;

/// The reports, records and appended rollup rows.
pub(crate) fn generate_records(records: u64, ips: u64) -> String {
    format!(
        "SET work_mem = '512MB'; SET synchronous_commit = off; SELECT setseed(0.42);
CREATE TEMP TABLE plan AS
WITH w AS (SELECT j, 1.0 / (j * j) AS w FROM generate_series(1, 20) j),
     total AS (SELECT sum(w) AS s FROM w),
     p AS (SELECT row_number() OVER (ORDER BY d, dom, j) AS id, d, dom, j,
                  ceil({records}::numeric / (365 * 3) * w / s)::int AS n
           FROM generate_series(0, 364) d, generate_series(1, 3) dom, w, total)
SELECT *, sum(n) OVER (ORDER BY id) - n AS first FROM p;
SELECT dmarcpipe_ensure_record_partition(m)
FROM generate_series('2025-12-01'::timestamptz, '2026-11-01', interval '1 month') m;
INSERT INTO aggregate_reports (id, input, org_name, report_id, policy_domain, date_begin, date_end, schema,
                               record_count, message_count, received_at)
OVERRIDING SYSTEM VALUE
SELECT id, id, 'reporter-' || j || '.example', 'bench-' || id, 'example' || dom || '.com',
       '2025-12-01 00:00+00'::timestamptz + d * interval '1 day',
       '2025-12-01 00:00+00'::timestamptz + (d + 1) * interval '1 day' - interval '1 second',
       'rfc7489', n, 0, now()
FROM plan;
INSERT INTO aggregate_records (report, record_no, date_begin, source_ip, message_count, disposition, dkim_aligned,
                               spf_aligned, header_from, dkim_count, dkim_domain, dkim_result, spf_count, spf_domain,
                               spf_result)
SELECT p.id, k, '2025-12-01 00:00+00'::timestamptz + p.d * interval '1 day',
       CASE WHEN rank % 10 = 9 THEN '2001:db8::'::inet + rank ELSE '198.18.0.0'::inet + rank END,
       1 + floor(random() ^ 6 * 500)::int,
       CASE WHEN dkim OR spf THEN 'none' WHEN u < 0.5 THEN 'quarantine' WHEN u < 0.8 THEN 'reject' ELSE 'none' END,
       CASE WHEN dkim THEN 'pass' ELSE 'fail' END, CASE WHEN spf THEN 'pass' ELSE 'fail' END,
       'example' || p.dom || '.com', 1, 'example' || p.dom || '.com', CASE WHEN dkim THEN 'pass' ELSE 'fail' END,
       1, 'example' || p.dom || '.com', CASE WHEN spf THEN 'pass' ELSE 'fail' END
FROM plan p
CROSS JOIN LATERAL generate_series(1, p.n) k
CROSS JOIN LATERAL (SELECT CASE WHEN p.first + k - 1 < {ips} THEN p.first + k - 1
                                ELSE least(floor(exp(random() * ln({ips}::float8))) - 1, {ips} - 1)::bigint END AS rank,
                           random() < 0.85 AS dkim, random() < 0.8 AS spf, random() AS u) r;
INSERT INTO aggregate_rollup_daily
SELECT (b.date_begin AT TIME ZONE 'UTC')::date, b.policy_domain, b.org_name, r.disposition, r.dkim_aligned,
       r.spf_aligned, sum(r.message_count), count(*)
FROM aggregate_reports b JOIN aggregate_records r ON r.report = b.id AND r.date_begin = b.date_begin
GROUP BY b.id, 1, 2, 3, 4, 5, 6;
INSERT INTO aggregate_rollup_sources
SELECT (b.date_begin AT TIME ZONE 'UTC')::date, b.policy_domain, r.source_ip, sum(r.message_count),
       coalesce(sum(r.message_count) FILTER (WHERE dmarcpipe_dmarc_result(r.dkim_aligned, r.spf_aligned) = 'pass'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE dmarcpipe_dmarc_result(r.dkim_aligned, r.spf_aligned) = 'fail'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.disposition IN ('none', 'pass')), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.disposition = 'quarantine'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.disposition = 'reject'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.dkim_aligned = 'pass'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.spf_aligned = 'pass'), 0),
       count(*)
FROM aggregate_reports b JOIN aggregate_records r ON r.report = b.id AND r.date_begin = b.date_begin
GROUP BY b.id, 1, 2, 3;"
    )
}

/// What enrichment would have found about each address.
pub(crate) fn generate_sources(ips: u64) -> String {
    format!(
        "INSERT INTO source_ips (ip, ptr_name, ptr_base_domain, ptr_confirmed, ptr_status, ptr_looked_up,
    country_code, country_name, city, latitude, longitude, geo_source, geo_looked_up,
    asn, as_org, asn_source, asn_looked_up, sender_name, sender_kind, sender_looked_up)
SELECT ip,
       CASE WHEN has_ptr THEN 'mail-' || rank || '.host' || (rank % 2000) || '.example' END,
       CASE WHEN has_ptr THEN 'host' || (rank % 2000) || '.example' END,
       CASE WHEN has_ptr THEN rank % 7 <> 0 END,
       CASE WHEN looked THEN CASE WHEN has_ptr THEN 'found' ELSE 'nxdomain' END END,
       CASE WHEN looked THEN now() END,
       CASE WHEN has_geo THEN chr(65 + (rank % 200) / 26) || chr(65 + (rank % 200) % 26) END,
       CASE WHEN has_geo THEN 'Country ' || (rank % 200) END,
       CASE WHEN has_geo THEN 'City ' || (rank % 20000) END,
       CASE WHEN has_geo THEN -60 + (rank % 20000) * 0.006 END,
       CASE WHEN has_geo THEN -170 + (rank % 20000) * 0.017 END,
       CASE WHEN looked THEN 'bench-city 2026-11-28' END, CASE WHEN looked THEN now() END,
       CASE WHEN has_geo THEN 64500 + rank % 5000 END,
       CASE WHEN has_geo THEN 'Network ' || (rank % 5000) END,
       CASE WHEN looked THEN 'bench-asn 2026-11-28' END, CASE WHEN looked THEN now() END,
       CASE WHEN has_sender THEN 'Sender ' || (rank % 150) END,
       CASE WHEN has_sender THEN (ARRAY['mailbox_provider', 'esp', 'marketing', 'crm', 'security_gateway',
                                        'forwarder', 'hosting', 'other'])[1 + rank % 8] END,
       CASE WHEN looked THEN now() END
FROM (SELECT rank, CASE WHEN rank % 10 = 9 THEN '2001:db8::'::inet + rank ELSE '198.18.0.0'::inet + rank END AS ip,
             rank % 20 <> 19 AS looked, rank % 20 <> 19 AND rank % 10 <> 3 AS has_ptr,
             rank % 20 <> 19 AND rank % 25 <> 4 AS has_geo, rank % 20 <> 19 AND rank % 5 < 3 AS has_sender
      FROM generate_series(0, {ips} - 1) rank) g
ON CONFLICT (ip) DO NOTHING"
    )
}

/// Seconds of one `dmarcpipe report --by KEY` run with the filter's arguments.
fn report(binary: &Path, url: &str, key: &str, filter: &[&str]) -> Result<f64> {
    let mut args = vec!["--by", key, "--format", "csv", "--output", "/dev/null"];
    args.extend_from_slice(filter);
    crate::report::timed(binary, url, &args)
}

/// Median milliseconds of each key and filter; prints them, returns the slowest.
fn time_every_key(
    binary: &Path,
    url: &str,
    title: &str,
    filters: &[(&str, &[&str])],
    runs: usize,
) -> Result<(f64, String)> {
    println!("\n{title}");
    print!("{:<10}", "key");
    for (name, _) in filters {
        print!(" {name:>13}");
    }
    println!();
    let mut slowest = (0.0, String::new());
    for key in KEYS {
        print!("{key:<10}");
        for &(name, filter) in filters {
            let mut times = (0..runs).map(|_| report(binary, url, key, filter)).collect::<Result<Vec<f64>>>()?;
            times.sort_by(f64::total_cmp);
            let median = times[runs / 2] * 1000.0;
            print!(" {median:>10.0} ms");
            if median > slowest.0 {
                slowest = (median, format!("--by {key} ({name})"));
            }
        }
        println!();
    }
    println!("slowest: {} in {:.0} ms (median of {runs} runs)", slowest.1, slowest.0);
    Ok(slowest)
}

/// A session holding the compaction lock, so that reports query the rows as appended.
fn hold_compaction_lock(url: &str) -> Result<Child> {
    Command::new("psql")
        .arg(url)
        .args(["-qtA", "-c", "SELECT pg_advisory_lock(hashtext('dmarcpipe_compact_rollups')), pg_sleep(86400)"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("psql holding the compaction lock")
}

pub(crate) fn run(binary: &Path, data: &GeneratedData, records: u64, ips: u64) -> Result<()> {
    let url = &data.url;
    let count = |sql: &str| psql_value(url, sql);
    let mut before = None;
    if data.fresh {
        let started = Instant::now();
        psql(url, &generate_records(records, ips))?;
        psql(url, &generate_sources(ips))?;
        psql(url, "VACUUM ANALYZE")?;
        println!(
            "generated {} records from {} distinct sources ({} enriched), {} rollup rows per day and source, \
             {} per day and result, in {:.0} s",
            count("SELECT count(*) FROM aggregate_records")?,
            count("SELECT count(DISTINCT source_ip) FROM aggregate_rollup_sources")?,
            count("SELECT count(*) FROM source_ips")?,
            count("SELECT count(*) FROM aggregate_rollup_sources")?,
            count("SELECT count(*) FROM aggregate_rollup_daily")?,
            started.elapsed().as_secs_f64()
        );
        before = Some(time_before_compaction(binary, url)?);
    } else {
        println!(
            "the data of database {} ({} records; not generated again, so not timed before compaction)",
            data.database,
            count("SELECT count(*) FROM aggregate_records")?
        );
    }

    let seconds = report(binary, url, "domain", &[])?;
    println!(
        "\nthe first report compacts: {seconds:.1} s ({} rows per day and source, {} source totals, \
         {} rows per day and result remain)",
        count("SELECT count(*) FROM aggregate_rollup_sources")?,
        count("SELECT count(*) FROM aggregate_rollup_source_totals")?,
        count("SELECT count(*) FROM aggregate_rollup_daily")?,
    );
    let after = time_every_key(binary, url, "after compaction", &FILTERS, RUNS)?;
    match before {
        Some(before) => println!(
            "\nslowest rollup: {:.0} ms before compaction ({}), {:.0} ms after ({})",
            before.0, before.1, after.0, after.1
        ),
        None => println!("\nslowest rollup: {:.0} ms after compaction ({})", after.0, after.1),
    }
    Ok(())
}

/// Every key without filters on the rows as appended: compaction is kept out meanwhile.
fn time_before_compaction(binary: &Path, url: &str) -> Result<(f64, String)> {
    let mut holder = hold_compaction_lock(url)?;
    // Until psql has the lock, a report could compact.
    while psql_value(
        url,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND objid = hashtext('dmarcpipe_compact_rollups')::oid",
    )? == "0"
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let before = time_every_key(
        binary,
        url,
        "before compaction (the rows as appended, one per report and key)",
        &FILTERS[..1],
        RUNS_BEFORE,
    );
    // The server goes on sleeping when psql goes: end the session there.
    psql(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
         AND objid = hashtext('dmarcpipe_compact_rollups')::oid",
    )?;
    let _ = holder.wait();
    before
}
