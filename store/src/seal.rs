//! Sealing with age (X25519): what holds mail content is encrypted to the configured
//! recipients before it reaches the database, and opened only by holders of an identity.
//!
//! Keys and payloads are those of the `age` tool: recipients are `age1...` strings (one per
//! line in a recipients file, `#` comments allowed), identities are `AGE-SECRET-KEY-1...` lines
//! in an identity file as `age-keygen` writes it, and a sealed payload is a binary age file, so
//! `age -d -i key.txt` opens what dmarcpipe sealed and the other way round.

use std::io::{Read, Write};
use std::path::Path;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age::x25519;

/// Why keys could not be read or a payload not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{source_name}: `{text}` is not an age X25519 recipient (age1...): {reason}")]
    Recipient { source_name: String, text: String, reason: String },

    #[error("no age recipient configured in {0}")]
    NoRecipients(String),

    #[error("cannot read the age identity file {path}: {reason}")]
    Identity { path: String, reason: String },

    #[error("this identity cannot open the sample: it was sealed to other recipients")]
    WrongIdentity,

    #[error("the sealed sample is damaged or not an age file: {0}")]
    Damaged(String),

    #[error("sealing failed: {0}")]
    Seal(String),
}

/// Encrypts to a fixed set of recipients.
#[derive(Clone)]
pub struct Sealer {
    recipients: Vec<x25519::Recipient>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("recipients", &self.recipients.len()).finish()
    }
}

impl Sealer {
    /// A sealer from recipient strings (config `recipients`) and recipients files (the format
    /// of `age -R`). `source` names where the strings came from, for error messages.
    pub fn new(recipients: &[String], source: &str, files: &[&Path]) -> Result<Sealer, SealError> {
        let mut parsed = Vec::new();
        for text in recipients {
            parsed.push(parse_recipient(text.trim(), source)?);
        }
        for file in files {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(file).map_err(|err| SealError::Recipient {
                source_name: name.clone(),
                text: String::new(),
                reason: err.to_string(),
            })?;
            parsed.extend(parse_recipients_file(&text, &name)?);
        }
        if parsed.is_empty() {
            return Err(SealError::NoRecipients(source.to_owned()));
        }
        Ok(Sealer { recipients: parsed })
    }

    /// Encrypts `plaintext` into a binary age file.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let recipients = self.recipients.iter().map(|r| r as &dyn age::Recipient);
        let encryptor = age::Encryptor::with_recipients(recipients).map_err(|err| SealError::Seal(err.to_string()))?;
        let mut sealed = Vec::with_capacity(plaintext.len() + 256);
        let mut writer = encryptor.wrap_output(&mut sealed).map_err(|err| SealError::Seal(err.to_string()))?;
        writer.write_all(plaintext).map_err(|err| SealError::Seal(err.to_string()))?;
        writer.finish().map_err(|err| SealError::Seal(err.to_string()))?;
        Ok(sealed)
    }
}

/// The recipients of a recipients file: one per line, blank lines and `#` comments skipped.
pub fn parse_recipients_file(text: &str, source: &str) -> Result<Vec<x25519::Recipient>, SealError> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_recipient(line, source))
        .collect()
}

fn parse_recipient(text: &str, source: &str) -> Result<x25519::Recipient, SealError> {
    x25519::Recipient::from_str(text).map_err(|reason| {
        let reason = if text.starts_with("ssh-") {
            "SSH keys are not supported, use an age X25519 key (age-keygen)".to_owned()
        } else if text.strip_prefix("age1").is_some_and(|data| data.contains('1')) {
            // Bech32 data has no `1`: a second one ends the name of a plugin (age1yubikey1...).
            "plugin recipients are not supported, use an age X25519 key (age-keygen)".to_owned()
        } else {
            reason.to_owned()
        };
        SealError::Recipient { source_name: source.to_owned(), text: text.to_owned(), reason }
    })
}

/// Decrypts with the identities of an identity file.
pub struct Opener {
    identities: Vec<x25519::Identity>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener").field("identities", &self.identities.len()).finish_non_exhaustive()
    }
}

impl Opener {
    /// Reads an identity file as `age-keygen` and `dmarcpipe keygen` write it.
    pub fn from_file(path: &Path) -> Result<Opener, SealError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| SealError::Identity { path: path.display().to_string(), reason: err.to_string() })?;
        Opener::from_identity_text(&text, &path.display().to_string())
    }

    /// Reads the text of an identity file; `source` names it in errors.
    pub fn from_identity_text(text: &str, source: &str) -> Result<Opener, SealError> {
        let fail = |reason: String| SealError::Identity { path: source.to_owned(), reason };
        let mut identities = Vec::new();
        for (number, line) in text.lines().enumerate().map(|(n, line)| (n + 1, line.trim())) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match x25519::Identity::from_str(line) {
                Ok(identity) => identities.push(identity),
                Err(_) if line.starts_with("AGE-PLUGIN-") => {
                    return Err(fail(format!("line {number}: plugin identities are not supported")));
                }
                Err(_) if line.starts_with("-----BEGIN") || line.starts_with("age-encryption.org") => {
                    return Err(fail("SSH and passphrase-protected identities are not supported".into()));
                }
                Err(reason) => return Err(fail(format!("line {number} is not an age identity: {reason}"))),
            }
        }
        if identities.is_empty() {
            return Err(fail("no AGE-SECRET-KEY-1... line in it".into()));
        }
        Ok(Opener { identities })
    }

    /// Decrypts a binary age file.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let decryptor = age::Decryptor::new(sealed).map_err(|err| SealError::Damaged(err.to_string()))?;
        let identities = self.identities.iter().map(|i| i as &dyn age::Identity);
        let mut reader = decryptor.decrypt(identities).map_err(|err| match err {
            age::DecryptError::NoMatchingKeys => SealError::WrongIdentity,
            other => SealError::Damaged(other.to_string()),
        })?;
        let mut plaintext = Vec::with_capacity(sealed.len());
        reader.read_to_end(&mut plaintext).map_err(|err| SealError::Damaged(err.to_string()))?;
        Ok(plaintext)
    }
}

/// A new identity: the text of its identity file (as `age-keygen` writes it) and its recipient.
pub fn generate_identity() -> (String, String) {
    let identity = x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let file = format!("# created: {created}\n# public key: {recipient}\n{}\n", identity.to_string().expose_secret());
    (file, recipient)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_sealed_opens_with_the_identity_only() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let (identity, recipient) = generate_identity();
        let key = dir.path().join("key.txt");
        std::fs::write(&key, &identity).expect("write key");
        let sealer = Sealer::new(&[recipient], "test", &[]).expect("a sealer");
        let sealed = sealer.seal(b"Subject: secret").expect("sealed");
        assert!(sealed.starts_with(b"age-encryption.org/v1\n"));
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(Opener::from_file(&key).expect("identity").open(&sealed).expect("opened"), b"Subject: secret");

        let (other, _) = generate_identity();
        let other_key = dir.path().join("other.txt");
        std::fs::write(&other_key, other).expect("write key");
        let wrong = Opener::from_file(&other_key).expect("identity").open(&sealed);
        assert!(matches!(wrong, Err(SealError::WrongIdentity)), "{wrong:?}");
    }

    #[test]
    fn bad_keys_are_named_with_the_reason() {
        let err = Sealer::new(&["age1notakey".into()], "config.toml", &[]).expect_err("refused");
        assert!(err.to_string().contains("config.toml: `age1notakey`"), "{err}");
        let err = Sealer::new(&["ssh-ed25519 AAAA".into()], "config.toml", &[]).expect_err("refused");
        assert!(err.to_string().contains("SSH keys are not supported"), "{err}");
        assert!(matches!(Sealer::new(&[], "config.toml", &[]), Err(SealError::NoRecipients(_))));
        let (_, recipient) = generate_identity();
        let parsed = parse_recipients_file(&format!("# ours\n\n{recipient}\n"), "recipients.txt").expect("parsed");
        assert_eq!(parsed.len(), 1);
    }
}
