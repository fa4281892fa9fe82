//! The configuration file and how it combines with flags and the environment.
//!
//! ```toml
//! database_url = "postgres://dmarc@localhost/dmarc"
//!
//! [import]
//! jobs = 8
//!
//! [limits]
//! max_message_bytes = "256MiB"
//! max_decompressed_bytes = "2GiB"
//! ```

use std::path::Path;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::Limits;
use serde::Deserialize;

use crate::cli::LimitArgs;

/// The config file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    #[serde(default)]
    pub import: ImportSection,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSection {
    pub jobs: Option<usize>,
}

impl FileConfig {
    pub fn load(path: Option<&Path>) -> Result<FileConfig> {
        let Some(path) = path else {
            return Ok(FileConfig::default());
        };
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// The database URL: flag or `DATABASE_URL`, else the file.
    pub fn database_url(&self, flag: Option<&str>) -> Result<String> {
        match flag.map(str::to_owned).or_else(|| self.database_url.clone()) {
            Some(url) if !url.trim().is_empty() => Ok(url),
            _ => bail!("no database: set DATABASE_URL, pass --database-url, or set database_url in the config file"),
        }
    }

    /// File limits overridden by flags and `DMARCPIPE_MAX_*` variables.
    pub fn limits(&self, args: &LimitArgs) -> Limits {
        let mut limits = self.limits.clone();
        let LimitArgs {
            max_message_bytes,
            max_decompressed_bytes,
            max_compression_ratio,
            max_zip_entries,
            max_nesting,
            max_mime_depth,
            max_mime_parts,
            max_xml_depth,
            max_kept_bytes,
        } = args.clone();
        override_with(&mut limits.max_message_bytes, max_message_bytes);
        override_with(&mut limits.max_decompressed_bytes, max_decompressed_bytes);
        override_with(&mut limits.max_compression_ratio, max_compression_ratio);
        override_with(&mut limits.max_zip_entries, max_zip_entries);
        override_with(&mut limits.max_nesting, max_nesting);
        override_with(&mut limits.max_mime_depth, max_mime_depth);
        override_with(&mut limits.max_mime_parts, max_mime_parts);
        override_with(&mut limits.max_xml_depth, max_xml_depth);
        override_with(&mut limits.max_kept_bytes, max_kept_bytes);
        limits
    }
}

fn override_with<T>(slot: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *slot = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_are_overridden_by_flags() -> Result<()> {
        let config: FileConfig = toml::from_str(
            "database_url = \"postgres://file/db\"\n[import]\njobs = 3\n[limits]\nmax_message_bytes = \"1MiB\"\nmax_zip_entries = 7\n",
        )?;
        assert_eq!(config.import.jobs, Some(3));
        let limits = config.limits(&LimitArgs { max_zip_entries: Some(9), ..LimitArgs::default() });
        assert_eq!(limits.max_message_bytes, 1 << 20);
        assert_eq!(limits.max_zip_entries, 9);
        assert_eq!(limits.max_xml_depth, Limits::default().max_xml_depth);
        assert_eq!(config.database_url(Some("postgres://flag/db"))?, "postgres://flag/db");
        assert_eq!(config.database_url(None)?, "postgres://file/db");
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("[limits]\nmax_bogus = 1\n").is_err());
        assert!(toml::from_str::<FileConfig>("databse_url = \"x\"\n").is_err());
    }
}
