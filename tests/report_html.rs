//! The visual report in a real browser: `dmarcpipe report --format html` over the samples
//! (imported by the binary) and over generated data, opened in headless Chromium. Screenshots
//! at desktop (1280 px) and phone (390 px) widths are kept under `target/report-artifacts/`;
//! a probe script added to a copy of the page reports script errors, the page's width against
//! the window's (no horizontal scrolling on a phone) and the figures as the browser shows them,
//! which must equal the SQL sums. The PDF (`--format pdf`) is checked with `pdftotext` (the
//! figures are there) and `pdftoppm` (one to three pages that render); without Chromium the
//! PDF is refused with a message saying what to install.
//!
//! Needs Debian's `chromium` and `poppler-utils` (scripts/packages.sh installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Dmarcpipe, EXCLUDE_EXPECTED, code, path, root, samples, scalar};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng};
use serde_json::Value;
use sqlx::PgPool;

fn artifacts() -> PathBuf {
    let dir = root().join("target/report-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    dir
}

fn chromium() -> &'static str {
    ["chromium", "chromium-browser", "chromium-headless-shell"]
        .into_iter()
        .find(|name| {
            Command::new("sh").args(["-c", &format!("command -v {name}")]).output().is_ok_and(|o| o.status.success())
        })
        .expect("Chromium is installed (scripts/packages.sh installs Debian's chromium)")
}

fn browser(args: &[&str]) -> std::process::Output {
    let profile = tempfile::tempdir().expect("a profile directory");
    let output = Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("Chromium runs");
    assert!(output.status.success(), "chromium {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output
}

/// Added at the start of the page: every script error, and every console.error, is collected.
const CATCH: &str = "<script>window.__errors=[];window.addEventListener('error',function(e){window.__errors.push(String(e.message))});\
    (function(){var original=console.error;console.error=function(){window.__errors.push(Array.prototype.join.call(arguments,' '));original.apply(console,arguments);};})();</script>";

/// Added at the end of the body: sorts a table (the page's own script), then writes what it
/// found into the DOM, which `--dump-dom` prints.
const PROBE: &str = "<script>(function(){var th=document.querySelector('#sources th.sort');if(th){th.click();}\
    var figures={};document.querySelectorAll('[data-figure]').forEach(function(e){figures[e.dataset.figure]=e.textContent;});\
    var classes={};document.querySelectorAll('[data-class]').forEach(function(e){classes[e.dataset.class]=e.textContent;});\
    var out=document.createElement('pre');out.id='probe';out.textContent=JSON.stringify({errors:window.__errors,\
    scrollWidth:document.documentElement.scrollWidth,innerWidth:window.innerWidth,figures:figures,classes:classes,\
    svgs:document.querySelectorAll('svg').length});document.body.appendChild(out);})();</script>";

/// What the probe found in the page at a window width.
fn probe(page: &Path, width: u32) -> Value {
    let html = std::fs::read_to_string(page).expect("the page");
    let probed =
        html.replacen("<head>", &format!("<head>{CATCH}"), 1).replacen("</body>", &format!("{PROBE}</body>"), 1);
    let copy = page.with_extension(format!("probe-{width}.html"));
    std::fs::write(&copy, probed).expect("the probed copy");
    let output = browser(&[
        &format!("--window-size={width},900"),
        "--virtual-time-budget=3000",
        "--dump-dom",
        &format!("file://{}", copy.display()),
    ]);
    let dom = String::from_utf8_lossy(&output.stdout);
    let start = dom.find("<pre id=\"probe\">").expect("the probe ran") + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").expect("the probe's end");
    let text = dom[start..end].replace("&quot;", "\"").replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("probe output is JSON ({err}): {text}"))
}

fn screenshot(page: &Path, width: u32, name: &str) -> PathBuf {
    let file = artifacts().join(name);
    browser(&[
        &format!("--window-size={width},2200"),
        &format!("--screenshot={}", file.display()),
        &format!("file://{}", page.display()),
    ]);
    let bytes = std::fs::read(&file).expect("the screenshot");
    assert!(bytes.starts_with(b"\x89PNG"), "{name} is a PNG");
    file
}

fn thousands(value: i64) -> String {
    dmarcpipe_render::digest::thousands(value.into())
}

/// The page in a browser: no script error, no horizontal scrolling at either width, the
/// charts there, and the headline figures and classes equal to SQL.
async fn check_in_browser(pool: &PgPool, dmarcpipe: &Dmarcpipe, page: &Path, name: &str) {
    let messages = scalar(pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await;
    let class_rows = rows(dmarcpipe, &["report", "--by", "class", "--format", "json"]);
    for (width, device) in [(1280, "desktop"), (390, "phone")] {
        let found = probe(page, width);
        assert_eq!(found["errors"], Value::Array(Vec::new()), "{name} at {width} px: script errors");
        assert!(
            found["scrollWidth"].as_i64() <= found["innerWidth"].as_i64(),
            "{name} at {width} px scrolls sideways: {found}"
        );
        assert!(found["svgs"].as_i64().unwrap_or(0) >= 3, "charts and map: {found}");
        assert_eq!(found["figures"]["messages"].as_str(), Some(thousands(messages).as_str()), "{name}: {found}");
        for row in &class_rows {
            let class = row["class"].as_str().expect("a class");
            let shown = thousands(row["messages"].as_i64().expect("a count"));
            assert_eq!(found["classes"][class].as_str(), Some(shown.as_str()), "{name}: class {class}");
        }
        screenshot(page, width, &format!("{name}-{device}.png"));
    }
}

fn rows(dmarcpipe: &Dmarcpipe, args: &[&str]) -> Vec<Value> {
    let output = dmarcpipe.run(args);
    assert_eq!(code(&output), 0, "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    common::json(&output).as_array().expect("rows").clone()
}

fn report(dmarcpipe: &Dmarcpipe, format: &str, file: &Path) {
    let output = dmarcpipe.run(&["report", "--format", format, "-o", path(file)]);
    assert_eq!(code(&output), 0, "--format {format}: {}", String::from_utf8_lossy(&output.stderr));
}

/// What enrichment would have found about some sources: a country for the map, a known
/// service, a forwarder.
async fn enrich(pool: &PgPool) {
    sqlx::query(
        "INSERT INTO source_ips (ip, ptr_name, ptr_base_domain, sender_name, sender_kind, country_code, country_name, asn, as_org) \
         SELECT ip, 'mail.' || n || '.example', n || '.example', \
                CASE n % 4 WHEN 0 THEN 'SendGrid' WHEN 1 THEN 'Forward Email' END, \
                CASE n % 4 WHEN 0 THEN 'esp' WHEN 1 THEN 'forwarder' END, \
                (ARRAY['US','DE','FR','BR','JP','IN','VN','ZA'])[n % 8 + 1], NULL, 64500 + n % 20, 'AS ' || n % 20 \
         FROM (SELECT source_ip AS ip, row_number() OVER (ORDER BY source_ip) AS n \
               FROM (SELECT DISTINCT source_ip FROM dmarc_records WHERE source_ip IS NOT NULL) d) s \
         ON CONFLICT (ip) DO UPDATE SET ptr_name = excluded.ptr_name, ptr_base_domain = excluded.ptr_base_domain, \
             sender_name = excluded.sender_name, sender_kind = excluded.sender_kind, \
             country_code = excluded.country_code, asn = excluded.asn, as_org = excluded.as_org",
    )
    .execute(pool)
    .await
    .expect("source_ips rows");
}

#[sqlx::test]
async fn the_samples_report_in_a_browser_and_as_pdf(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let output = dmarcpipe.run(&["import", "--quiet", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())]);
    assert!(code(&output) <= 1, "{}", String::from_utf8_lossy(&output.stderr));
    enrich(&pool).await;
    let page = artifacts().join("samples.html");
    report(&dmarcpipe, "html", &page);
    let html = std::fs::read_to_string(&page).expect("the page");
    assert!(!html.contains(" src=") && !html.contains("<link"), "self-contained");
    check_in_browser(&pool, &dmarcpipe, &page, "samples").await;

    // The PDF: the figures are in its text, and its pages render.
    let pdf = artifacts().join("samples.pdf");
    report(&dmarcpipe, "pdf", &pdf);
    let text = Command::new("pdftotext").args(["-layout", path(&pdf), "-"]).output().expect("pdftotext runs");
    assert!(text.status.success(), "pdftotext: {}", String::from_utf8_lossy(&text.stderr));
    let text = String::from_utf8_lossy(&text.stdout);
    let messages = scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await;
    assert!(text.contains("DMARC report"), "{text}");
    assert!(text.contains(&thousands(messages)), "the message count {messages} in the PDF: {text}");
    assert!(text.contains("What to fix"), "{text}");
    let pages = tempfile::tempdir().expect("a directory");
    let rendered = Command::new("pdftoppm")
        .args(["-r", "40", "-png", path(&pdf), path(&pages.path().join("page"))])
        .output()
        .expect("pdftoppm runs");
    assert!(rendered.status.success(), "pdftoppm: {}", String::from_utf8_lossy(&rendered.stderr));
    let count = std::fs::read_dir(pages.path()).expect("pages").count();
    assert!((1..=3).contains(&count), "{count} pages");
}

#[sqlx::test]
async fn generated_data_and_markup_from_reporters_in_a_browser(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let dir = tempfile::tempdir().expect("a directory");
    let mut rng = Rng(14);
    const DAY: u64 = 86_400;
    let start = 1_793_577_600 - 13 * DAY; // 14 days up to 2026-11-02
    for day in 0..14 {
        for (org, domain) in
            [("google.com", "example.com"), ("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co", "example.org")]
        {
            let report = ReportBuilder::new(org, &format!("r-{day}-{domain}"), domain, start + day * DAY)
                .random_records(40, &mut rng);
            std::fs::write(dir.path().join(format!("{day}-{domain}.xml")), report.xml()).expect("a report file");
        }
    }
    let output = dmarcpipe.run(&["import", "--quiet", path(dir.path())]);
    assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    enrich(&pool).await;
    let page = artifacts().join("generated.html");
    report(&dmarcpipe, "html", &page);
    let html = std::fs::read_to_string(&page).expect("the page");
    assert!(!html.contains("<script>alert(1)"), "a reporter's markup is not markup in the page");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt; &amp;"), "it shows as text");
    check_in_browser(&pool, &dmarcpipe, &page, "generated").await;

    // The filters and the comparison: one domain, the last week against the week before.
    let week = artifacts().join("generated-week.html");
    let output = dmarcpipe.run(&[
        "report",
        "--format",
        "html",
        "--domain",
        "example.com",
        "--since",
        "2026-10-27",
        "--until",
        "2026-11-03",
        "-o",
        path(&week),
    ]);
    assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let html = std::fs::read_to_string(&week).expect("the page");
    assert!(html.contains("2026-10-27 to 2026-11-02") && html.contains("compared with 2026-10-20 to 2026-10-26"));
    assert!(!html.contains("example.org"), "only the domain asked for");
}

#[sqlx::test]
async fn the_pdf_without_chromium_says_what_to_install(pool: PgPool) {
    let empty = tempfile::tempdir().expect("a directory");
    let dmarcpipe = Dmarcpipe::on(&pool).env("PATH", path(empty.path())).env("DMARCPIPE_CHROMIUM", "");
    let pdf = empty.path().join("report.pdf");
    let output = dmarcpipe.run(&["report", "--format", "pdf", "-o", path(&pdf)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(code(&output), 2, "{stderr}");
    assert!(stderr.contains("chromium") && stderr.contains("apt-get install chromium"), "{stderr}");
    assert!(!pdf.exists());
    // And the other wrong uses, each with its reason.
    for (args, reason) in [
        (&["report", "--format", "pdf"][..], "add -o report.pdf"),
        (&["report", "--format", "html", "--by", "org"][..], "--by org does not go with --format html"),
        (&["report", "--format", "html", "--tls"][..], "TLS reports come as table"),
        (&["report"][..], "--by KEY is needed"),
    ] {
        let output = Dmarcpipe::on(&pool).run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(code(&output), 2, "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}
