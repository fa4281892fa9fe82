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
//!
//! [[imap]]                              # dmarcpipe fetch, and serve beside (or without) SMTP
//! name = "reports"
//! host = "imap.example.com"
//! user = "dmarc@example.com"
//! password_file = "imap-password"       # relative to this file
//! ```
//!
//! Every key of an `[[imap]]` section can also come from `DMARCPIPE_IMAP_<NAME>_<KEY>` (the
//! mailbox's name upper-cased, other characters as `_`), which wins over the file:
//! `DMARCPIPE_IMAP_REPORTS_PASSWORD`, `DMARCPIPE_IMAP_REPORTS_HOST`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use dmarcpipe_ingest::Limits;
use dmarcpipe_ingest::intake::imap::{Credentials, MailboxSettings, OAuthMechanism, Tls, TokenSource};
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
    /// IMAP mailboxes that `fetch` reads and `serve` watches.
    #[serde(default)]
    pub imap: Vec<ImapSection>,
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

/// One `[[imap]]` mailbox; each key optional but `host` and `user` (the defaults are those of
/// [`MailboxSettings::new`], but `max_message_bytes`: that of `[limits]`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSection {
    /// In logs and `fetch --mailbox` (default: the user).
    pub name: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub tls: Option<TlsMode>,
    pub ca_file: Option<PathBuf>,
    pub user: Option<String>,
    pub auth: Option<AuthMode>,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub token_command: Option<String>,
    pub folder: Option<String>,
    pub archive_folder: Option<String>,
    pub not_report_folder: Option<String>,
    pub rejected_folder: Option<String>,
    pub delete: Option<bool>,
    pub leave_oversized: Option<bool>,
    #[serde(default, deserialize_with = "dmarcpipe_ingest::limits::optional_size")]
    pub max_message_bytes: Option<u64>,
    pub poll_seconds: Option<u64>,
    pub idle: Option<bool>,
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    Implicit,
    Starttls,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    Password,
    Xoauth2,
    Oauthbearer,
}

impl ImapSection {
    /// `DMARCPIPE_IMAP_<NAME>_<KEY>` values from `lookup` over the file's.
    fn with_environment(mut self, name: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ImapSection> {
        let prefix: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
        let get = |key: &str| lookup(&format!("DMARCPIPE_IMAP_{prefix}_{key}"));
        let parse = |key: &str, value: String| -> Result<toml::Value> {
            toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut table| table.remove("v"))
                .ok_or_else(|| anyhow::anyhow!("DMARCPIPE_IMAP_{prefix}_{key}: `{value}` is not a valid value"))
        };
        macro_rules! text {
            ($($field:ident),*) => {$(
                if let Some(value) = get(&stringify!($field).to_ascii_uppercase()) {
                    self.$field = Some(value.into());
                }
            )*};
        }
        macro_rules! typed {
            ($($field:ident),*) => {$(
                let key = stringify!($field).to_ascii_uppercase();
                if let Some(value) = get(&key) {
                    let value = parse(&key, value)?;
                    self.$field = Some(value.try_into().with_context(|| format!("DMARCPIPE_IMAP_{prefix}_{key}"))?);
                }
            )*};
        }
        text!(
            host,
            user,
            password,
            password_file,
            ca_file,
            token_file,
            token_command,
            folder,
            archive_folder,
            not_report_folder,
            rejected_folder
        );
        typed!(port, delete, leave_oversized, poll_seconds, idle, timeout_seconds);
        // Enumerations in any case: `STARTTLS`, `XOAUTH2`.
        let choice = |key: &str| -> Option<(toml::Value, String)> {
            let value = get(key)?;
            Some((toml::Value::String(value.to_ascii_lowercase()), format!("DMARCPIPE_IMAP_{prefix}_{key}: `{value}`")))
        };
        if let Some((value, what)) = choice("TLS") {
            self.tls = Some(value.try_into().context(what)?);
        }
        if let Some((value, what)) = choice("AUTH") {
            self.auth = Some(value.try_into().context(what)?);
        }
        if let Some(value) = get("MAX_MESSAGE_BYTES") {
            let size = dmarcpipe_ingest::limits::parse_size(&value)
                .map_err(|reason| anyhow::anyhow!("DMARCPIPE_IMAP_{prefix}_MAX_MESSAGE_BYTES: {reason}"))?;
            self.max_message_bytes = Some(size);
        }
        Ok(self)
    }
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

    /// The `[[imap]]` mailboxes, with `DMARCPIPE_IMAP_*` variables applied and checked; a
    /// mailbox never reads messages larger than `limits.max_message_bytes`.
    pub fn mailboxes(&self, limits: &Limits) -> Result<Vec<MailboxSettings>> {
        self.mailboxes_with(limits, &|key| std::env::var(key).ok())
    }

    fn mailboxes_with(&self, limits: &Limits, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<MailboxSettings>> {
        let mut mailboxes: Vec<MailboxSettings> = Vec::new();
        for (index, section) in self.imap.iter().enumerate() {
            let label =
                section.name.clone().or_else(|| section.user.clone()).unwrap_or_else(|| format!("#{}", index + 1));
            let section = section.clone().with_environment(&label, lookup)?;
            let mailbox =
                self.mailbox(&label, section, limits).with_context(|| format!("[[imap]] mailbox `{label}`"))?;
            if mailboxes.iter().any(|m| m.name == mailbox.name) {
                bail!("two [[imap]] mailboxes are named `{}`: give each its own name", mailbox.name);
            }
            mailboxes.push(mailbox);
        }
        Ok(mailboxes)
    }

    fn mailbox(&self, name: &str, section: ImapSection, limits: &Limits) -> Result<MailboxSettings> {
        let host = section.host.filter(|h| !h.trim().is_empty()).context("no host")?;
        let user = section.user.filter(|u| !u.trim().is_empty()).context("no user")?;
        let token = match (section.token_file, section.token_command) {
            (Some(_), Some(_)) => bail!("token_file and token_command both set: choose one"),
            (Some(file), None) => Some(TokenSource::File(self.relative_path(&file))),
            (None, Some(command)) => Some(TokenSource::Command(command)),
            (None, None) => None,
        };
        let password = match (section.password, section.password_file) {
            (Some(_), Some(_)) => bail!("password and password_file both set: choose one"),
            (Some(password), None) => Some(password),
            (None, Some(file)) => {
                let path = self.relative_path(&file);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read password_file {}", path.display()))?;
                Some(text.trim_end_matches(['\r', '\n']).to_owned())
            }
            (None, None) => None,
        };
        let auth = section.auth.unwrap_or(if token.is_some() { AuthMode::Xoauth2 } else { AuthMode::Password });
        let credentials = match (auth, password, token) {
            (AuthMode::Password, Some(password), None) => Credentials::Password(password),
            (AuthMode::Password, None, None) => {
                bail!("no password: set password_file (or password), or token_command for OAuth")
            }
            (AuthMode::Xoauth2 | AuthMode::Oauthbearer, None, Some(token)) => {
                let mechanism =
                    if auth == AuthMode::Xoauth2 { OAuthMechanism::XOAuth2 } else { OAuthMechanism::OAuthBearer };
                Credentials::OAuth { mechanism, token }
            }
            (AuthMode::Xoauth2 | AuthMode::Oauthbearer, _, None) => bail!("OAuth needs token_command or token_file"),
            _ => bail!("a password and an OAuth token are both set: choose one"),
        };
        let mut mailbox = MailboxSettings::new(name, &host, &user, credentials);
        mailbox.tls = match section.tls.unwrap_or(TlsMode::Implicit) {
            TlsMode::Implicit => Tls::Implicit,
            TlsMode::Starttls => Tls::StartTls,
            TlsMode::None => Tls::None,
        };
        mailbox.port = section.port.unwrap_or(mailbox.tls.default_port());
        mailbox.ca_file = section.ca_file.map(|file| self.relative_path(&file));
        if mailbox.ca_file.is_some() && mailbox.tls == Tls::None {
            bail!("ca_file is set but tls = \"none\"");
        }
        let or = |value: Option<String>, default: &mut String| {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                *default = value;
            }
        };
        or(section.folder, &mut mailbox.folder);
        or(section.archive_folder, &mut mailbox.archive_folder);
        or(section.not_report_folder, &mut mailbox.not_report_folder);
        or(section.rejected_folder, &mut mailbox.rejected_folder);
        mailbox.delete = section.delete.unwrap_or(false);
        mailbox.leave_oversized = section.leave_oversized.unwrap_or(false);
        mailbox.max_message_bytes =
            section.max_message_bytes.unwrap_or(limits.max_message_bytes).min(limits.max_message_bytes);
        mailbox.poll_interval = Duration::from_secs(section.poll_seconds.unwrap_or(300).max(1));
        mailbox.idle = section.idle.unwrap_or(true);
        mailbox.timeout = Duration::from_secs(section.timeout_seconds.unwrap_or(120).max(1));
        Ok(mailbox)
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
            max_memory,
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
        override_with(&mut limits.max_memory, max_memory);
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
    fn imap_sections_take_defaults_files_and_environment() -> Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("imap-password"), "from the file\n")?;
        let path = dir.path().join("dmarcpipe.toml");
        std::fs::write(
            &path,
            "[[imap]]\nname = \"reports\"\nhost = \"imap.example.com\"\nuser = \"dmarc@example.com\"\n\
             password_file = \"imap-password\"\n[[imap]]\nname = \"gmail\"\nhost = \"imap.gmail.com\"\n\
             user = \"dmarc@example.net\"\ntoken_command = \"oauth2l fetch\"\nfolder = \"DMARC\"\ndelete = true\n",
        )?;
        let config = FileConfig::load(Some(&path))?;
        let limits = Limits::default();
        let env = |key: &str| match key {
            "DMARCPIPE_IMAP_REPORTS_TLS" => Some("STARTTLS".to_owned()),
            "DMARCPIPE_IMAP_REPORTS_POLL_SECONDS" => Some("60".to_owned()),
            "DMARCPIPE_IMAP_REPORTS_MAX_MESSAGE_BYTES" => Some("1G".to_owned()),
            "DMARCPIPE_IMAP_GMAIL_AUTH" => Some("oauthbearer".to_owned()),
            _ => None,
        };
        let mailboxes = config.mailboxes_with(&limits, &env)?;
        let (reports, gmail) = (&mailboxes[0], &mailboxes[1]);
        assert_eq!(reports.credentials, Credentials::Password("from the file".into()));
        assert_eq!((reports.tls, reports.port), (Tls::StartTls, 143));
        assert_eq!(reports.poll_interval, Duration::from_secs(60));
        assert_eq!(reports.max_message_bytes, limits.max_message_bytes, "never above the limit");
        assert_eq!((reports.folder.as_str(), reports.archive_folder.as_str()), ("INBOX", "DMARC/Archive"));
        assert_eq!(
            gmail.credentials,
            Credentials::OAuth {
                mechanism: OAuthMechanism::OAuthBearer,
                token: TokenSource::Command("oauth2l fetch".into())
            }
        );
        assert_eq!((gmail.port, gmail.folder.as_str(), gmail.delete), (993, "DMARC", true));

        let bad = |toml: &str| -> String {
            let config: FileConfig = toml::from_str(toml).expect("parses");
            format!("{:#}", config.mailboxes_with(&limits, &|_| None).expect_err("refused"))
        };
        assert!(bad("[[imap]]\nhost = \"h\"\nuser = \"u\"\n").contains("no password"));
        assert!(bad("[[imap]]\nname = \"x\"\nuser = \"u\"\npassword = \"p\"\n").contains("mailbox `x`: no host"));
        assert!(
            bad("[[imap]]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\ntoken_command = \"t\"\n").contains("both set")
        );
        assert!(
            bad("[[imap]]\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n[[imap]]\nhost = \"h2\"\nuser = \"u\"\npassword = \"p\"\n")
                .contains("two [[imap]] mailboxes are named `u`")
        );
        assert!(toml::from_str::<FileConfig>("[[imap]]\ntls = \"ssl\"\n").is_err());
        let wrong = |key: &str, value: &str| {
            let (key, value) = (key.to_owned(), value.to_owned());
            let config: FileConfig =
                toml::from_str("[[imap]]\nname = \"r\"\nhost = \"h\"\nuser = \"u\"\npassword = \"p\"\n")
                    .expect("parses");
            format!(
                "{:#}",
                config.mailboxes_with(&limits, &move |k| (k == key).then(|| value.clone())).expect_err("refused")
            )
        };
        assert!(wrong("DMARCPIPE_IMAP_R_PORT", "many").contains("DMARCPIPE_IMAP_R_PORT"));
        assert!(wrong("DMARCPIPE_IMAP_R_TLS", "ssl").contains("DMARCPIPE_IMAP_R_TLS"));
        Ok(())
    }

    #[test]
    fn unknown_keys_are_errors() {
        assert!(toml::from_str::<FileConfig>("[limits]\nmax_bogus = 1\n").is_err());
        assert!(toml::from_str::<FileConfig>("databse_url = \"x\"\n").is_err());
    }
}
