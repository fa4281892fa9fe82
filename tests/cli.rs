//! End-to-end tests: the real `dmarcpipe` binary against a real PostgreSQL, a fresh database
//! per test (`#[sqlx::test]` creates it; the binary migrates it itself).

mod common;

use common::{Dmarcpipe, EXCLUDE_EXPECTED, Sealing, code, json, path, samples, scalar};
use dmarcpipe_ingest::testkit::{ReportBuilder, Rng};
use sqlx::PgPool;

#[sqlx::test]
async fn importing_the_samples_gives_every_outcome(pool: PgPool) {
    // With a recipient, so that rejected inputs keep their bytes.
    let sealing = Sealing::new();
    let dmarcpipe = sealing.dmarcpipe(&pool);
    let output = dmarcpipe.run(&["import", "--json", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())]);
    // Some samples are broken on purpose: exit 1, and every input is accounted for.
    assert_eq!(code(&output), 1, "{}", String::from_utf8_lossy(&output.stderr));
    let summary = json(&output);
    let count = |key: &str| summary[key].as_u64().expect("a count");
    assert_eq!(count("rejected"), 15);
    assert_eq!(count("not_report"), 6);
    assert_eq!(count("duplicate"), 1);
    assert_eq!(count("inputs"), count("stored") + count("duplicate") + count("not_report") + count("rejected"));
    assert_eq!(count("unreadable") + count("failed"), 0);
    assert_eq!(count("reports") as i64, scalar(&pool, "SELECT count(*) FROM dmarc_reports").await);
    assert_eq!(count("records") as i64, scalar(&pool, "SELECT count(*) FROM dmarc_records").await);
    assert_eq!(count("inputs") as i64, scalar(&pool, "SELECT count(*) FROM dmarc_inputs").await);
    // Rejections are named on stderr with their reason.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rejected/xxe.xml") && stderr.contains("DTD"), "{stderr}");

    // The rollups were refreshed by the import and agree with the records.
    let totals = json(&dmarcpipe.run(&["report", "--by", "domain", "--format", "json"]));
    let messages: i64 =
        totals.as_array().expect("rows").iter().map(|row| row["messages"].as_i64().expect("a total")).sum();
    assert_eq!(messages, scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await);

    // A second run stores nothing new: every input is a byte-identical duplicate, the rejected
    // ones of the input kept for `reprocess` (issue 10: not a second rejected row each).
    let output = dmarcpipe.run(&["import", "--json", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())]);
    assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
    let again = json(&output);
    assert_eq!(again["inputs"], summary["inputs"]);
    assert_eq!(again["reports"], 0);
    assert_eq!(again["duplicate"], summary["inputs"]);
    assert_eq!(
        scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'rejected'").await,
        count("rejected") as i64
    );
}

#[sqlx::test]
async fn two_imports_at_once_store_each_report_once(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let first = dmarcpipe
        .command(&["import", "--quiet", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())])
        .spawn()
        .expect("starts");
    let second = dmarcpipe
        .command(&["import", "--quiet", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())])
        .spawn()
        .expect("starts");
    for child in [first, second] {
        let output = child.wait_with_output().expect("ends");
        assert!(matches!(code(&output), 0 | 1));
    }
    let keys = scalar(
        &pool,
        "SELECT count(DISTINCT (org_name, report_id, policy_domain, date_begin, date_end)) FROM dmarc_reports",
    )
    .await;
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, keys);
    let records: i64 =
        sqlx::query_scalar("SELECT sum(record_count)::bigint FROM dmarc_reports").fetch_one(&pool).await.expect("sum");
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_records").await, records);
}

#[sqlx::test]
async fn an_mta_pipe_gets_the_right_exit_codes(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    let mail = std::fs::read(samples().join("fastmail.eml")).expect("sample");
    let stored = dmarcpipe.run_with_stdin(&["import", "--json", "-"], &mail);
    assert_eq!(code(&stored), 0, "{}", String::from_utf8_lossy(&stored.stderr));
    assert_eq!(json(&stored)["stored"], 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE channel = 'stdin'").await, 1);

    let reply = std::fs::read(samples().join("not-reports/human-reply.eml")).expect("sample");
    let not_report = dmarcpipe.run_with_stdin(&["import", "--json", "-"], &reply);
    assert_eq!(code(&not_report), 0);
    assert_eq!(json(&not_report)["not_report"], 1);

    let broken = std::fs::read(samples().join("rejected/xxe.xml")).expect("sample");
    assert_eq!(code(&dmarcpipe.run_with_stdin(&["import", "-"], &broken)), 1);

    // A message too large to be read whole (over 1 MiB) is streamed, stored alone like a small one.
    let mut rng = Rng(5);
    let large = ReportBuilder::new("pipe.example", "pipe-large", "example.com", 1_793_577_600)
        .random_records(6_000, &mut rng)
        .xml();
    assert!(large.len() > 1 << 20, "{} bytes", large.len());
    let streamed = dmarcpipe.run_with_stdin(&["import", "--json", "-"], large.as_bytes());
    assert_eq!(code(&streamed), 0, "{}", String::from_utf8_lossy(&streamed.stderr));
    assert_eq!((json(&streamed)["stored"].as_u64(), json(&streamed)["records"].as_u64()), (Some(1), Some(6_000)));

    // The database is down: EX_TEMPFAIL, so the MTA keeps the message and retries.
    let down = Dmarcpipe::without_database().env("DATABASE_URL", "postgres://nobody@127.0.0.1:9/none");
    let output = down.run_with_stdin(&["import", "-"], &mail);
    assert_eq!(code(&output), 75, "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("try again later"));
}

#[sqlx::test]
async fn reports_come_as_table_csv_and_json_with_filters(pool: PgPool) {
    let dmarcpipe = Dmarcpipe::on(&pool);
    assert_eq!(
        code(&dmarcpipe.run(&["import", "--quiet", EXCLUDE_EXPECTED[0], EXCLUDE_EXPECTED[1], path(&samples())])),
        1
    );
    let total = scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records").await;
    for key in ["result", "source", "org", "domain", "day"] {
        let rows = json(&dmarcpipe.run(&["report", "--by", key, "--format", "json"]));
        let rows = rows.as_array().expect("an array");
        assert!(!rows.is_empty(), "--by {key}");
        let sum: i64 = rows.iter().map(|row| row["messages"].as_i64().expect("messages")).sum();
        assert_eq!(sum, total, "--by {key} adds up to every message");
        assert!(rows.iter().all(|row| row.get(key).is_some()), "rows keyed by {key}");
    }
    let net = json(&dmarcpipe.run(&["report", "--by", "org", "--domain", "example.net", "--format", "json"]));
    let net_total: i64 = net.as_array().expect("rows").iter().map(|row| row["messages"].as_i64().expect("n")).sum();
    let expected =
        scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records WHERE policy_domain = 'example.net'").await;
    assert_eq!(net_total, expected);

    let day = json(&dmarcpipe.run(&[
        "report",
        "--by",
        "day",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-02",
        "--format",
        "json",
    ]));
    let days: Vec<&str> = day.as_array().expect("rows").iter().map(|row| row["day"].as_str().expect("a day")).collect();
    assert_eq!(days, ["2026-11-01"]);

    let csv = dmarcpipe.run(&["report", "--by", "result", "--format", "csv"]);
    let text = String::from_utf8_lossy(&csv.stdout);
    assert!(text.starts_with("result,messages,dmarc_pass,dmarc_fail,"), "{text}");
    let table = dmarcpipe.run(&["report", "--by", "result"]);
    assert!(String::from_utf8_lossy(&table.stdout).contains("messages"));

    let out = tempfile::NamedTempFile::new().expect("a temp file");
    let written = dmarcpipe.run(&["report", "--by", "org", "--format", "csv", "-o", path(out.path())]);
    assert_eq!(code(&written), 0);
    assert!(std::fs::read_to_string(out.path()).expect("written").starts_with("org,messages"));

    let bad = dmarcpipe.run(&["report", "--by", "org", "--since", "last tuesday"]);
    assert_eq!(code(&bad), 2);
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("--since") && said.contains("yesterday"), "{said}");
    // A range that selects no day is an error, not an empty report.
    for args in [["report", "--by", "org"].as_slice(), ["forensic", "list"].as_slice()] {
        let backwards = dmarcpipe.run(&[args, &["--since", "2026-11-05", "--until", "2026-11-01"]].concat());
        assert_eq!(code(&backwards), 2, "{args:?}");
        let said = String::from_utf8_lossy(&backwards.stderr);
        assert!(said.contains("--since 2026-11-05 is not before --until 2026-11-01"), "{said}");
    }

    // Records without a DMARC evaluation have the result `unknown`; records without a source
    // address have no source: null in JSON, empty in CSV, said in words in a table.
    let results = json(&dmarcpipe.run(&["report", "--by", "result", "--format", "json"]));
    let unknown =
        scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records WHERE dmarc_result IS NULL").await;
    assert!(unknown > 0);
    let row = results.as_array().expect("rows").iter().find(|row| row["result"] == "unknown").expect("unknown");
    assert_eq!(row["messages"].as_i64(), Some(unknown));
    let sources = json(&dmarcpipe.run(&["report", "--by", "source", "--format", "json"]));
    let without = scalar(&pool, "SELECT sum(message_count)::bigint FROM dmarc_records WHERE source_ip IS NULL").await;
    let row = sources.as_array().expect("rows").iter().find(|row| row["source"].is_null()).expect("a null source");
    assert_eq!(row["messages"].as_i64(), Some(without));
    assert!(sources.as_array().expect("rows").iter().all(|row| row["source"] != "unknown"));
    let csv =
        String::from_utf8_lossy(&dmarcpipe.run(&["report", "--by", "source", "--format", "csv"]).stdout).into_owned();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().expect("a header row").clone();
    let column = |name: &str| header.iter().position(|title| title == name).expect(name);
    let (source, messages) = (column("source"), column("messages"));
    let null_source = reader
        .records()
        .map(|record| record.expect("a CSV row"))
        .find(|record| record[source].is_empty())
        .unwrap_or_else(|| panic!("no row with an empty source: {csv}"));
    assert_eq!(null_source[messages], without.to_string(), "{csv}");
    let table = String::from_utf8_lossy(&dmarcpipe.run(&["report", "--by", "source"]).stdout).into_owned();
    assert!(table.lines().any(|line| line.trim_start().starts_with("(no address)")), "{table}");
}

#[sqlx::test]
async fn reprocess_takes_rejected_inputs_again(pool: PgPool) {
    let sealing = Sealing::new();
    let dmarcpipe = sealing.dmarcpipe(&pool);
    let file = samples().join("mailru.xml");
    let rejected = dmarcpipe.run(&["import", "--json", "--max-xml-depth", "3", path(&file)]);
    assert_eq!(code(&rejected), 1);
    assert_eq!(json(&rejected)["rejected"], 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE payload_sealed").await, 1);
    // The kept bytes are sealed: without the identity, reprocess says what it needs.
    let no_key = dmarcpipe.run(&["reprocess", "--json"]);
    assert_eq!(code(&no_key), 2);
    assert!(String::from_utf8_lossy(&no_key.stderr).contains("-i FILE"), "{}", String::from_utf8_lossy(&no_key.stderr));
    let identity = path(&sealing.identity);
    let still = dmarcpipe.run(&["reprocess", "--json", "-i", identity, "--max-xml-depth", "3"]);
    assert_eq!(code(&still), 1);
    let fixed = dmarcpipe.run(&["reprocess", "--json", "-i", identity]);
    assert_eq!(code(&fixed), 0, "{}", String::from_utf8_lossy(&fixed.stderr));
    assert_eq!(json(&fixed)["stored"], 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_inputs WHERE outcome = 'stored'").await, 1);
    assert_eq!(scalar(&pool, "SELECT count(*) FROM dmarc_reports").await, 1);
}

#[sqlx::test]
async fn settings_come_from_flags_then_environment_then_config_file(pool: PgPool) {
    let config = tempfile::NamedTempFile::new().expect("a temp file");
    std::fs::write(config.path(), "[limits]\nmax_xml_depth = 3\n").expect("written");
    let file = samples().join("outlook-xsi.xml");
    let from_file = Dmarcpipe::on(&pool).run(&["--config", path(config.path()), "import", "--json", path(&file)]);
    assert_eq!(json(&from_file)["rejected"], 1, "the config file's limit applies");

    let env_wins = Dmarcpipe::on(&pool)
        .env("DMARCPIPE_CONFIG", path(config.path()))
        .env("DMARCPIPE_MAX_XML_DEPTH", "32")
        .run(&["import", "--json", path(&samples().join("gmx-dmarc2.xml"))]);
    assert_eq!(json(&env_wins)["stored"], 1, "the environment beats the file");

    let flag_wins = Dmarcpipe::on(&pool).env("DMARCPIPE_MAX_XML_DEPTH", "3").run(&[
        "import",
        "--json",
        "--max-xml-depth",
        "32",
        path(&samples().join("yahoo.xml.gz")),
    ]);
    assert_eq!(json(&flag_wins)["stored"], 1, "the flag beats the environment");

    std::fs::write(config.path(), "[limits]\nmax_xml_depht = 3\n").expect("written");
    let typo = Dmarcpipe::on(&pool).run(&["--config", path(config.path()), "import", path(&file)]);
    assert_eq!(code(&typo), 2);
    assert!(
        String::from_utf8_lossy(&typo.stderr).contains("max_xml_depht"),
        "{}",
        String::from_utf8_lossy(&typo.stderr)
    );
}

#[test]
fn help_shows_what_each_command_takes_and_no_values_of_variables() {
    let dmarcpipe = Dmarcpipe::without_database()
        .env("DATABASE_URL", "postgres://dmarc:s3cret@db.example/dmarc")
        .env("DMARCPIPE_CONFIG", "/etc/dmarcpipe-secret.toml")
        .env("DMARCPIPE_MAX_XML_DEPTH", "12345");
    let commands: [&[&str]; 11] = [
        &[],
        &["migrate"],
        &["import"],
        &["report"],
        &["forensic", "list"],
        &["forensic", "show"],
        &["keygen"],
        &["serve"],
        &["fetch"],
        &["reprocess"],
        &["parse"],
    ];
    for command in commands {
        let output = dmarcpipe.run(&[command, &["--help"]].concat());
        assert_eq!(code(&output), 0, "{command:?}");
        let help = String::from_utf8_lossy(&output.stdout);
        // clap prints `[env: NAME=value]`, and `[env: NAME=]` for a variable that is not set.
        assert!(!help.contains("=]") && !help.contains("s3cret") && !help.contains("12345"), "{command:?}: {help}");
        assert!(!help.contains("secret.toml"), "{command:?}: {help}");
        let uses_a_database = !matches!(command, ["parse"] | ["keygen"]);
        assert_eq!(help.contains("--database-url"), uses_a_database, "{command:?}: {help}");
    }
    // A usage error with DATABASE_URL set: the usage line shows what is required, and only that.
    for (command, usage) in [
        (&["import"][..], "Usage: dmarcpipe import <PATH>..."),
        (&["forensic", "show"][..], "Usage: dmarcpipe forensic show --identity <FILE> <ID>"),
    ] {
        let output = dmarcpipe.run(command);
        assert_eq!(code(&output), 2);
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.lines().any(|line| line == usage), "{said}");
    }
}

#[test]
fn without_a_database_commands_say_so() {
    let output = Dmarcpipe::without_database().run(&["report", "--by", "org"]);
    assert_eq!(code(&output), 2);
    assert!(String::from_utf8_lossy(&output.stderr).contains("DATABASE_URL"));
}

#[test]
fn a_database_that_is_down_is_named_and_the_local_one_says_how_to_start_it() {
    // A project whose local cluster (scripts/db.sh, .pgdata) is not running.
    let project = tempfile::tempdir().expect("a temp dir");
    std::fs::create_dir_all(project.path().join("scripts")).expect("created");
    std::fs::write(project.path().join("scripts/db.sh"), "#!/bin/sh\n").expect("written");
    let url = format!("postgres://postgres@localhost:54329/dmarcpipe?host={}/.pgdata", project.path().display());
    let output = Dmarcpipe::without_database().env("DATABASE_URL", &url).run(&["report", "--by", "org"]);
    assert_eq!(code(&output), 2);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains(&format!("cannot open the database at {url}: ")), "{said}");
    let start = format!("start it with `{}/scripts/db.sh up`", project.path().display());
    assert!(said.contains(&start), "{said}");

    // Elsewhere: the URL without its password, and the MTA told to retry.
    let elsewhere = "postgres://dmarc:hunter2@localhost/dmarc?host=/nonexistent/socket/dir";
    let output = Dmarcpipe::without_database().env("DATABASE_URL", elsewhere).run_with_stdin(&["import", "-"], b"x");
    assert_eq!(code(&output), 75);
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("postgres://dmarc@localhost/dmarc?host=/nonexistent/socket/dir"), "{said}");
    assert!(!said.contains("hunter2") && !said.contains("start it with"), "{said}");
}

#[test]
fn parse_needs_no_database_and_prints_one_json_array() {
    let output = Dmarcpipe::without_database().run(&["parse", path(&samples().join("multi-report.zip"))]);
    assert_eq!(code(&output), 0);
    let parsed = json(&output);
    assert_eq!(parsed.as_array().map(Vec::len), Some(1), "{parsed}");
    assert_eq!(parsed[0]["inspection"]["verdict"], "reports");
    assert_eq!(parsed[0]["inspection"]["reports"].as_array().expect("reports").len(), 2);

    // Several files, an mbox and a directory: still one JSON document, an object per input.
    let several = Dmarcpipe::without_database().run(&[
        "parse",
        EXCLUDE_EXPECTED[0],
        EXCLUDE_EXPECTED[1],
        path(&samples().join("mailru.xml")),
        path(&samples().join("several.mbox")),
        path(&samples().join("maildir")),
    ]);
    assert_eq!(code(&several), 0, "{}", String::from_utf8_lossy(&several.stderr));
    let inputs = json(&several);
    let inputs = inputs.as_array().expect("an array");
    assert_eq!(inputs.len(), 1 + 4 + 3);
    assert!(inputs.iter().all(|input| input["inspection"]["verdict"].is_string()), "{inputs:?}");

    // The same as JSON Lines: one object per line.
    let lines = Dmarcpipe::without_database().run(&[
        "parse",
        "--jsonl",
        path(&samples().join("several.mbox")),
        path(&samples().join("rejected/xxe.xml")),
    ]);
    assert_eq!(code(&lines), 1, "a rejected input: exit 1");
    let text = String::from_utf8_lossy(&lines.stdout);
    let objects: Vec<serde_json::Value> =
        text.lines().map(|line| serde_json::from_str(line).expect("each line is a JSON object")).collect();
    assert_eq!(objects.len(), 5, "{text}");
    assert_eq!(objects[4]["inspection"]["verdict"], "rejected");

    // Nothing found is an empty array, still JSON.
    let empty = tempfile::tempdir().expect("a temp dir");
    assert_eq!(json(&Dmarcpipe::without_database().run(&["parse", path(empty.path())])), serde_json::json!([]));
}

#[sqlx::test]
async fn unreadable_paths_are_reported_and_the_run_goes_on(pool: PgPool) {
    let output =
        Dmarcpipe::on(&pool).run(&["import", "--json", "/nonexistent/reports", path(&samples().join("mailru.xml"))]);
    assert_eq!(code(&output), 1);
    let summary = json(&output);
    assert_eq!((summary["unreadable"].as_u64(), summary["stored"].as_u64()), (Some(1), Some(1)));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/reports"));
}
