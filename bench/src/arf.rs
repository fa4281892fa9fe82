//! The `arf` phase of `make bench`: 2,000 failure reports (ARF, RFC 5965/6591), each a mail
//! of its own with the original message attached, imported into a fresh database with a
//! configured recipient, so that every sample is sealed with age before it is stored.
//!
//! The messages are the `google-arf.eml` sample with a distinct Message-ID, source address and
//! original Message-ID each (distinct bytes: none is a duplicate of another).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::{ImportOptions, create_database, drop_database, import, print_header, print_line};

const MESSAGES: usize = 2_000;
const TEMPLATE: &str = include_str!("../../samples/forensic/google-arf.eml");

/// Message `serial`: the sample with its identifiers and source address made distinct.
fn message(serial: usize) -> String {
    let ip = format!("203.0.{}.{}", (serial >> 8) & 0xff, serial & 0xff);
    TEMPLATE
        .replace("<0000000000007a3e15064f2c1d88@google.example>", &format!("<bench-arf-{serial}@google.example>"))
        .replace("<20261103091402.7d41c2a0@billing.example.com>", &format!("<bench-{serial}@billing.example.com>"))
        .replace("203.0.113.45", &ip)
}

/// Writes the messages (when missing), an age identity and a configuration naming its
/// recipient; returns (directory of messages, configuration file).
fn prepare(binary: &Path, corpus: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let dir = corpus.join("arf");
    let messages = dir.join("messages");
    if !messages.join(format!("{:05}.eml", MESSAGES - 1)).exists() {
        fs::create_dir_all(&messages)?;
        for serial in 0..MESSAGES {
            fs::write(messages.join(format!("{serial:05}.eml")), message(serial))?;
        }
    }
    let config = dir.join("dmarcpipe.toml");
    if !config.exists() {
        let keygen = std::process::Command::new(binary)
            .arg("keygen")
            .arg("-o")
            .arg(dir.join("key.txt"))
            .output()
            .context("running dmarcpipe keygen")?;
        if !keygen.status.success() {
            bail!("keygen failed: {}", String::from_utf8_lossy(&keygen.stderr));
        }
        fs::write(dir.join("recipients.txt"), &keygen.stdout)?;
        fs::write(&config, "[forensic]\nrecipients_file = \"recipients.txt\"\n")?;
    }
    Ok((messages, config))
}

pub(crate) fn run(binary: &Path, corpus: &Path) -> Result<()> {
    let (messages, config) = prepare(binary, corpus)?;
    let (admin, database, url) = create_database(binary, "arf")?;
    let measured = import(binary, &url, &messages, ImportOptions { jobs: None, config: Some(&config) });
    drop_database(&admin, &database)?;
    let measured = measured?;
    if measured.forensic != MESSAGES as u64 {
        bail!("{MESSAGES} failure reports imported, {} stored", measured.forensic);
    }
    print_header();
    print_line("2,000 failure reports (ARF), sealed", &measured, None);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_differs_in_its_identifiers_and_source() {
        let (first, second) = (message(0), message(257));
        assert_ne!(first, second);
        assert!(second.contains("<bench-arf-257@google.example>") && second.contains("Source-IP: 203.0.1.1"));
        assert!(!first.contains("203.0.113.45") && !first.contains("7a3e15064f2c1d88"));
    }
}
