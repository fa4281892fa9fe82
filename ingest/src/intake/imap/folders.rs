//! Folder names: from the configuration's form to the server's, and missing folders created.
//!
//! Input: a name as configured (`DMARC/Archive`: `/` between levels, UTF-8). Output: the name
//! the server knows, in modified UTF-7. A name that exists on the server exactly as written is
//! used as it is (`INBOX.Archive` on Courier, `[Gmail]/All Mail`); otherwise `/` becomes the
//! server's hierarchy delimiter (Dovecot's maildir refuses `/`: parsedmarc#551) and the
//! personal namespace's prefix goes in front (`INBOX.` on Cyrus and Courier, RFC 2342). A
//! destination that does not exist is created (`[ALREADYEXISTS]` is fine) and subscribed; the
//! watched folder must exist.

use super::ImapError;
use super::connection::Session;
use super::protocol::{self, Data};
use super::utf7;

/// How the server arranges names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Hierarchy {
    /// `None`: a flat namespace.
    pub delimiter: Option<String>,
    /// Put before every name outside INBOX (the personal namespace).
    pub prefix: String,
}

impl Hierarchy {
    /// From NAMESPACE when the server has it, else from `LIST "" ""`.
    pub async fn of(session: &mut Session) -> Result<Hierarchy, ImapError> {
        if session.has("NAMESPACE") {
            for item in session.run("NAMESPACE").await? {
                if let Data::Namespace { prefix, delimiter } = item {
                    return Ok(Hierarchy { delimiter, prefix });
                }
            }
        }
        for item in session.run("LIST \"\" \"\"").await? {
            if let Data::List(listed) = item {
                return Ok(Hierarchy { delimiter: listed.delimiter, prefix: String::new() });
            }
        }
        Ok(Hierarchy::default())
    }

    /// `DMARC/Not reports` in the server's terms (before modified UTF-7).
    pub fn translate(&self, name: &str) -> String {
        if name.eq_ignore_ascii_case("INBOX") {
            return "INBOX".to_owned();
        }
        let joined = match &self.delimiter {
            Some(delimiter) => name.split('/').collect::<Vec<_>>().join(delimiter),
            None => name.to_owned(),
        };
        let under_inbox = joined.get(..5).is_some_and(|head| head.eq_ignore_ascii_case("INBOX"))
            && self.delimiter.as_deref().is_some_and(|d| joined[5..].starts_with(d));
        if self.prefix.is_empty() || joined.starts_with(&self.prefix) || under_inbox {
            joined
        } else {
            format!("{}{joined}", self.prefix)
        }
    }
}

/// Whether the server has a selectable folder of exactly this (wire) name.
async fn exists(session: &mut Session, wire_name: &str) -> Result<bool, ImapError> {
    let data = session.run(&format!("LIST \"\" {}", protocol::quote(wire_name))).await?;
    Ok(data.into_iter().any(|item| match item {
        Data::List(listed) => {
            let same = listed.name == wire_name || (wire_name == "INBOX" && listed.name.eq_ignore_ascii_case("INBOX"));
            same && listed.selectable()
        }
        _ => false,
    }))
}

/// The server's name for a configured folder; created when missing and `create` is set.
pub(super) async fn resolve(
    session: &mut Session,
    hierarchy: &Hierarchy,
    configured: &str,
    create: bool,
) -> Result<String, ImapError> {
    let exact = utf7::encode(configured);
    if exists(session, &exact).await? {
        return Ok(exact);
    }
    let translated = utf7::encode(&hierarchy.translate(configured));
    if translated != exact && exists(session, &translated).await? {
        return Ok(translated);
    }
    if !create {
        return Err(ImapError::Settings(format!(
            "folder `{configured}` does not exist on {} (tried `{translated}`)",
            session.wire.host
        )));
    }
    session.create(&protocol::quote(&translated)).await?;
    tracing::info!(folder = %configured, name = %translated, "created folder");
    Ok(translated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_delimiter_and_the_namespace() {
        let dovecot = Hierarchy { delimiter: Some(".".into()), prefix: String::new() };
        assert_eq!(dovecot.translate("DMARC/Not reports"), "DMARC.Not reports");
        assert_eq!(dovecot.translate("inbox"), "INBOX");
        let gmail = Hierarchy { delimiter: Some("/".into()), prefix: String::new() };
        assert_eq!(gmail.translate("DMARC/Archive"), "DMARC/Archive");
        let courier = Hierarchy { delimiter: Some(".".into()), prefix: "INBOX.".into() };
        assert_eq!(courier.translate("DMARC/Archive"), "INBOX.DMARC.Archive");
        assert_eq!(courier.translate("INBOX/Archive"), "INBOX.Archive");
        assert_eq!(courier.translate("INBOX.Archive"), "INBOX.Archive");
        let flat = Hierarchy { delimiter: None, prefix: String::new() };
        assert_eq!(flat.translate("DMARC/Archive"), "DMARC/Archive");
    }
}
