//! One module per command; shared helpers here.

pub mod digest;
pub mod enrich;
pub mod fetch;
pub mod forensic;
pub mod geoip;
pub mod import;
pub mod keygen;
pub mod parse;
pub mod pdf;
pub mod report;
pub mod reprocess;
pub mod serve;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use dmarcpipe_store::{Durability, Store, StoreError};

use crate::config::FileConfig;
use crate::exit;

/// Connects (applying pending migrations).
pub async fn connect(config: &FileConfig, database_url: Option<&str>, connections: u32) -> Result<Store> {
    connect_with(config, database_url, connections, Durability::EachInput).await
}

pub async fn connect_with(
    config: &FileConfig,
    database_url: Option<&str>,
    connections: u32,
    durability: Durability,
) -> Result<Store> {
    let url = config.database_url(database_url)?;
    let sealer = config.sealer()?;
    let store = Store::connect_with(&url, connections, durability).await.map_err(|source| CannotOpen {
        start: local_cluster(&url).filter(|_| source.is_transient()),
        url,
        source,
    })?;
    let timeout = config.database_timeout_seconds.map_or(dmarcpipe_store::DEFAULT_TIMEOUT, Duration::from_secs);
    Ok(store.with_sealer(sealer).with_timeout(timeout))
}

/// The database could not be opened: the URL tried (shown without its password), why, and for
/// the project's local cluster that is not running, the command that starts it.
#[derive(Debug)]
struct CannotOpen {
    url: String,
    source: StoreError,
    /// `scripts/db.sh` of the project whose `.pgdata` the URL names.
    start: Option<PathBuf>,
}

impl std::fmt::Display for CannotOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot open the database at {}: {}", without_password(&self.url), self.source)?;
        if let Some(script) = &self.start {
            write!(f, "; it is the project's local PostgreSQL, start it with `{} up`", script.display())?;
        }
        Ok(())
    }
}

impl std::error::Error for CannotOpen {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// `url` without a password, in its user part or as a `password=` parameter.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user part ends at the last `@` before the query (a password may hold `/` and `@`).
    let before_query = rest.find(['?', '#']).unwrap_or(rest.len());
    let (user, tail) = match rest[..before_query].rfind('@') {
        Some(at) => (rest[..at].split(':').next().map(|user| format!("{user}@")), &rest[at + 1..]),
        None => (None, rest),
    };
    let authority = user.unwrap_or_default();
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query.split('&').filter(|parameter| !parameter.starts_with("password=")).collect();
            if kept.is_empty() { path.to_owned() } else { format!("{path}?{}", kept.join("&")) }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// The `scripts/db.sh` that starts the cluster `url` names, when it is a project's local one
/// (its socket directory `host=` is `.pgdata` beside that script's `scripts/`).
fn local_cluster(url: &str) -> Option<PathBuf> {
    let (_, query) = url.split_once('?')?;
    let host = query.split('&').find_map(|parameter| parameter.strip_prefix("host="))?;
    let data = Path::new(host);
    if data.file_name()? != ".pgdata" {
        return None;
    }
    let script = data.parent()?.join("scripts/db.sh");
    script.is_file().then_some(script)
}

pub async fn migrate(config: &FileConfig, database_url: Option<&str>) -> Result<u8> {
    let store = connect(config, database_url, 2).await?;
    let version: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
        .fetch_one(store.pool())
        .await
        .context("cannot read the migration version")?;
    println!("database schema is at migration {}", version.unwrap_or(0));
    Ok(exit::OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        for (url, shown) in [
            ("postgres://dmarc:s3cret@db.example:5432/dmarc", "postgres://dmarc@db.example:5432/dmarc"),
            ("postgres://dmarc@db.example/dmarc?sslmode=require", "postgres://dmarc@db.example/dmarc?sslmode=require"),
            (
                "postgres://db.example/dmarc?user=d&password=s3cret&sslmode=verify-full",
                "postgres://db.example/dmarc?user=d&sslmode=verify-full",
            ),
            ("postgres://d:s3cret@localhost/x?password=s3cret", "postgres://d@localhost/x"),
            ("postgres://p:a@b@localhost/x", "postgres://p@localhost/x"),
            ("postgres://p:a/b@localhost/x?host=/run/pg", "postgres://p@localhost/x?host=/run/pg"),
            ("postgres://localhost/x?host=/run/pg", "postgres://localhost/x?host=/run/pg"),
        ] {
            assert_eq!(without_password(url), shown);
        }
    }

    #[test]
    fn the_local_cluster_is_recognised_by_its_directory() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        std::fs::create_dir_all(root.join("scripts"))?;
        std::fs::write(root.join("scripts/db.sh"), "#!/bin/sh\n")?;
        let url = format!("postgres://postgres@localhost:54329/dmarcpipe?host={}", root.join(".pgdata").display());
        assert_eq!(local_cluster(&url), Some(root.join("scripts/db.sh")));
        assert_eq!(local_cluster("postgres://postgres@localhost/dmarcpipe?host=/var/run/postgresql"), None);
        assert_eq!(local_cluster("postgres://postgres@localhost/dmarcpipe"), None);
        Ok(())
    }
}
