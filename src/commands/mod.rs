//! One module per command; shared helpers here.

pub mod fetch;
pub mod forensic;
pub mod import;
pub mod keygen;
pub mod parse;
pub mod report;
pub mod reprocess;
pub mod serve;

use std::time::Duration;

use anyhow::{Context, Result};
use dmarcpipe_store::{Durability, Store};

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
    let store = Store::connect_with(&url, connections, durability).await.context("cannot open the database")?;
    let timeout = config.database_timeout_seconds.map_or(dmarcpipe_store::DEFAULT_TIMEOUT, Duration::from_secs);
    Ok(store.with_sealer(sealer).with_timeout(timeout))
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
