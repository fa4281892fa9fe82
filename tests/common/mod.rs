//! Helpers of the end-to-end tests: the `dmarcpipe` binary run against the test's database.

#![allow(dead_code)] // each test file uses its own share

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod imap;
pub mod smtp;

use serde_json::Value;
use sqlx::PgPool;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn samples() -> PathBuf {
    root().join("samples/aggregate")
}

/// The golden expectations beside the samples are not inputs.
pub const EXCLUDE_EXPECTED: [&str; 2] = ["--exclude", "*.json"];

/// The URL of the test's database: `DATABASE_URL` with the database name swapped.
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests");
    let database = pool.connect_options().get_database().expect("a database").to_owned();
    let (without_query, query) = base.split_once('?').map_or((base.as_str(), None), |(b, q)| (b, Some(q)));
    let authority_end = without_query.find("://").map_or(0, |at| at + 3);
    let prefix = match without_query[authority_end..].find('/') {
        Some(slash) => &without_query[..authority_end + slash],
        None => without_query,
    };
    match query {
        Some(query) => format!("{prefix}/{database}?{query}"),
        None => format!("{prefix}/{database}"),
    }
}

pub struct Dmarcpipe {
    url: Option<String>,
    envs: Vec<(String, String)>,
}

impl Dmarcpipe {
    pub fn on(pool: &PgPool) -> Self {
        Dmarcpipe { url: Some(database_url(pool)), envs: Vec::new() }
    }

    pub fn without_database() -> Self {
        Dmarcpipe { url: None, envs: Vec::new() }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.envs.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_dmarcpipe"));
        command.args(args).current_dir(root()).env_remove("DATABASE_URL").env_remove("DMARCPIPE_CONFIG");
        // No enrichment unless a test asks for it (`.env("DMARCPIPE_NO_ENRICH", "0")`): it would
        // look up reverse DNS at the machine's resolver, which tests must not reach.
        command.env("DMARCPIPE_NO_ENRICH", "1").env_remove("DMARCPIPE_GEOIP_DIR");
        if let Some(url) = &self.url {
            command.env("DATABASE_URL", url);
        }
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("dmarcpipe runs")
    }

    pub fn run_with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("dmarcpipe starts");
        child.stdin.take().expect("stdin").write_all(input).expect("input written");
        child.wait_with_output().expect("dmarcpipe ends")
    }
}

pub fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is JSON ({err}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

pub fn code(output: &Output) -> i32 {
    output.status.code().expect("exited")
}

pub async fn scalar(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar::<_, Option<i64>>(sql).fetch_one(pool).await.expect("query runs").unwrap_or(0)
}

/// A self-signed certificate and its key (`cert.pem`, `key.pem` in `dir`), made by openssl,
/// for `subject_alt_name` (`DNS:name` or `IP:address`, which is also its common name).
pub fn self_signed(dir: &Path, subject_alt_name: &str) -> (PathBuf, PathBuf) {
    let (certificate, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let common_name = subject_alt_name.split_once(':').map_or(subject_alt_name, |(_, name)| name);
    let output = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", &format!("/CN={common_name}"), "-addext", &format!("subjectAltName={subject_alt_name}")])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-keyout", path(&key), "-out", path(&certificate)])
        .output()
        .expect("openssl runs (apt-get install openssl)");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (certificate, key)
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// An identity made by `dmarcpipe keygen`, and a config file sealing to it.
pub struct Sealing {
    pub dir: tempfile::TempDir,
    pub identity: PathBuf,
    pub config: PathBuf,
    pub recipient: String,
}

impl Sealing {
    pub fn new() -> Sealing {
        let dir = tempfile::tempdir().expect("a temp dir");
        let identity = dir.path().join("key.txt");
        let output = Dmarcpipe::without_database().run(&["keygen", "-o", path(&identity)]);
        assert_eq!(code(&output), 0, "{}", String::from_utf8_lossy(&output.stderr));
        let recipient = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        assert!(recipient.starts_with("age1"), "{recipient}");
        let config = Sealing::config_for(dir.path(), &recipient);
        Sealing { dir, identity, config, recipient }
    }

    /// A config file in `dir` whose recipients file holds `recipient`.
    pub fn config_for(dir: &Path, recipient: &str) -> PathBuf {
        std::fs::write(dir.join("recipients.txt"), format!("# who reads forensic samples\n{recipient}\n"))
            .expect("written");
        let config = dir.join("dmarcpipe.toml");
        std::fs::write(&config, "[forensic]\nrecipients_file = \"recipients.txt\"\n").expect("written");
        config
    }

    /// `dmarcpipe` on the test's database with this config.
    pub fn dmarcpipe(&self, pool: &PgPool) -> Dmarcpipe {
        Dmarcpipe::on(pool).env("DMARCPIPE_CONFIG", path(&self.config))
    }
}
