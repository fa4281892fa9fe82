//! The configuration file and how it combines with flags and the environment.
//!
//! ```toml
//! database_url = "postgres://dmarc@localhost/dmarc"
//! database_timeout_seconds = 30          # a statement's answer, before the input is retried
//!
//! [import]
//! jobs = 8
//!
//! [limits]
//! max_message_bytes = "256MiB"
//! max_decompressed_bytes = "2GiB"
//!
//! [forensic]
//! recipients = ["age1..."]              # and/or:
//! recipients_file = "recipients.txt"    # relative to this file
//!
//! [smtp]                                # dmarcpipe serve
//! listen = ["0.0.0.0:25", "[::]:25"]
//! lmtp_listen = ["127.0.0.1:2424"]
//! hostname = "mx.dmarc.example.com"
//! recipients = ["reports@dmarc.example.com", "@ruf.example.com"]
//! tls_certificate = "/etc/dmarcpipe/fullchain.pem"   # relative to this file
//! tls_key = "/etc/dmarcpipe/privkey.pem"
//! max_message_bytes = "64MiB"
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::Limits;
use dmarcpipe_store::seal::Sealer;
use serde::Deserialize;

use crate::cli::LimitArgs;

/// The config file, every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub database_url: Option<String>,
    /// How long the database may take to answer one statement before an input fails with a
    /// transient error (the database is taken to be frozen or gone).
    pub database_timeout_seconds: Option<u64>,
    #[serde(default)]
    pub import: ImportSection,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub forensic: ForensicSection,
    #[serde(default)]
    pub smtp: SmtpSection,
    /// Where the file was read from (relative paths in it are relative to its directory).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// Who can read forensic samples: age X25519 recipients.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForensicSection {
    #[serde(default)]
    pub recipients: Vec<String>,
    pub recipients_file: Option<PathBuf>,
}

/// `dmarcpipe serve`: where it listens, whom it accepts mail for, TLS, and its caps (each
/// optional; the defaults are those of [`dmarcpipe_ingest::intake::smtp::SmtpSettings::new`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub lmtp_listen: Vec<String>,
    pub hostname: Option<String>,
    #[serde(default)]
    pub recipients: Vec<String>,
    pub tls_certificate: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    #[serde(default, deserialize_with = "dmarcpipe_ingest::limits::optional_size")]
    pub max_message_bytes: Option<u64>,
    pub max_recipients: Option<usize>,
    pub max_sessions: Option<usize>,
    pub max_sessions_per_ip: Option<usize>,
    pub command_timeout_seconds: Option<u64>,
    pub data_timeout_seconds: Option<u64>,
    /// Bytes per second of message data that extend the DATA and session deadlines.
    #[serde(default, deserialize_with = "dmarcpipe_ingest::limits::optional_size")]
    pub data_min_bytes_per_second: Option<u64>,
    pub session_timeout_seconds: Option<u64>,
    pub shutdown_grace_seconds: Option<u64>,
    /// The longest a message waits for the store before the sender is told `451` to retry.
    pub store_timeout_seconds: Option<u64>,
    /// Database connections of the server (messages stored at once).
    pub database_connections: Option<u32>,
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
        let mut config: FileConfig =
            toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
        config.path = Some(path.to_owned());
        Ok(config)
    }

    /// The sealer for forensic samples and kept inputs, `None` when no recipient is configured.
    pub fn sealer(&self) -> Result<Option<Sealer>> {
        let section = &self.forensic;
        if section.recipients.is_empty() && section.recipients_file.is_none() {
            return Ok(None);
        }
        let config_name = self.path.as_ref().map_or("the configuration".into(), |p| p.display().to_string());
        let file = section.recipients_file.as_deref().map(|file| self.relative_path(file));
        let files: Vec<&Path> = file.iter().map(PathBuf::as_path).collect();
        let sealer = Sealer::new(&section.recipients, &format!("{config_name} [forensic] recipients"), &files)?;
        Ok(Some(sealer))
    }

    /// A path from the file, relative to the file's directory.
    pub fn relative_path(&self, file: &Path) -> PathBuf {
        match self.path.as_ref().and_then(|p| p.parent()) {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_owned(),
        }
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
    fn recipients_come_from_the_list_and_a_file_beside_the_config() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let (_, first) = dmarcpipe_store::seal::generate_identity();
        let (_, second) = dmarcpipe_store::seal::generate_identity();
        std::fs::write(dir.path().join("recipients.txt"), format!("# team\n{second}\n"))?;
        let path = dir.path().join("dmarcpipe.toml");
        std::fs::write(
            &path,
            format!("[forensic]\nrecipients = [\"{first}\"]\nrecipients_file = \"recipients.txt\"\n"),
        )?;
        let config = FileConfig::load(Some(&path))?;
        assert!(config.sealer()?.is_some());
        assert!(FileConfig::default().sealer()?.is_none());

        std::fs::write(&path, "[forensic]\nrecipients = [\"age1bogus\"]\n")?;
        let err = FileConfig::load(Some(&path))?.sealer().expect_err("a bad recipient");
        assert!(err.to_string().contains("dmarcpipe.toml [forensic] recipients: `age1bogus`"), "{err}");
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("[limits]\nmax_bogus = 1\n").is_err());
        assert!(toml::from_str::<FileConfig>("databse_url = \"x\"\n").is_err());
    }
}
