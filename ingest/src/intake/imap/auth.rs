//! Credentials on the wire: SASL payloads (PLAIN, XOAUTH2, OAUTHBEARER) and OAuth 2.0
//! access tokens.
//!
//! Input: the configured [`Credentials`]. Output: the bytes of the client's first SASL
//! response, and the answer to a server's error challenge. Tokens come from a file (read at
//! every login: another program keeps it fresh) or from a command, whose output is either the
//! bare token or a token endpoint's JSON (`access_token`, `expires_in`); a command's token is
//! kept until a minute before it expires, and the command runs again when the server rejects
//! the token. Tokens and passwords never reach a log or an error message.

use std::time::{Duration, Instant};

use super::{ImapError, OAuthMechanism, TokenSource};

/// Longest a `token_command` may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A token is used until this long before its announced expiry.
const EXPIRY_MARGIN: Duration = Duration::from_secs(60);

/// `\0user\0password` (RFC 4616).
pub(super) fn plain(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

/// The first client response of an OAuth mechanism.
pub(super) fn oauth(mechanism: OAuthMechanism, user: &str, host: &str, port: u16, token: &str) -> Vec<u8> {
    match mechanism {
        // developers.google.com/workspace/gmail/imap/xoauth2-protocol
        OAuthMechanism::XOAuth2 => format!("user={user}\x01auth=Bearer {token}\x01\x01").into_bytes(),
        // RFC 7628 §3.1: the gs2 header names the user (Dovecot needs `a=`).
        OAuthMechanism::OAuthBearer => {
            format!("n,a={},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01", gs2_escape(user))
                .into_bytes()
        }
    }
}

/// What a client answers to the server's error challenge, so that the server can finish
/// with a tagged `NO`: nothing for XOAUTH2, `%x01` for OAUTHBEARER (RFC 7628 §3.2.3).
pub(super) fn error_reply(mechanism: OAuthMechanism) -> &'static [u8] {
    match mechanism {
        OAuthMechanism::XOAuth2 => b"",
        OAuthMechanism::OAuthBearer => b"\x01",
    }
}

pub(super) fn mechanism_name(mechanism: OAuthMechanism) -> &'static str {
    match mechanism {
        OAuthMechanism::XOAuth2 => "XOAUTH2",
        OAuthMechanism::OAuthBearer => "OAUTHBEARER",
    }
}

/// RFC 5801 saslname: `=` and `,` escaped.
fn gs2_escape(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

/// An access token and where it came from.
#[derive(Debug)]
pub(super) struct Tokens {
    source: TokenSource,
    cached: Option<Cached>,
}

struct Cached {
    token: String,
    /// When to stop using it; `None` when the source did not say.
    until: Option<Instant>,
}

impl std::fmt::Debug for Cached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cached").field("until", &self.until).finish_non_exhaustive()
    }
}

/// A token handed out, and whether it was just obtained (a rejected fresh token is final; a
/// rejected cached one is worth one retry with a new one).
#[derive(Debug)]
pub(super) struct Token {
    pub value: String,
    pub fresh: bool,
}

impl Tokens {
    pub fn new(source: TokenSource) -> Self {
        Tokens { source, cached: None }
    }

    /// A token to log in with: the cached one while it is valid, else a new one.
    pub async fn get(&mut self) -> Result<Token, ImapError> {
        if let Some(cached) = &self.cached
            && cached.until.is_none_or(|until| Instant::now() < until)
        {
            return Ok(Token { value: cached.token.clone(), fresh: false });
        }
        let (value, lifetime) = match &self.source {
            TokenSource::File(path) => {
                // A few bytes from a local file: no need for a blocking thread.
                let text = std::fs::read_to_string(path).map_err(|err| ImapError::Token {
                    reason: format!("cannot read token_file {}: {err}", path.display()),
                })?;
                parse_token(&text).ok_or_else(|| ImapError::Token {
                    reason: format!("token_file {} holds no token", path.display()),
                })?
            }
            TokenSource::Command(command) => run_command(command).await?,
        };
        // A file is read again at every login (its writer renews it); a command's token is kept.
        if matches!(self.source, TokenSource::Command(_)) {
            let until = lifetime.map(|lifetime| Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN));
            self.cached = Some(Cached { token: value.clone(), until });
        }
        Ok(Token { value, fresh: true })
    }

    /// The server rejected the token: do not use it again.
    pub fn forget(&mut self) {
        self.cached = None;
    }

    /// Whether asking again can give a different token than the one just rejected.
    pub fn renewable(&self) -> bool {
        matches!(self.source, TokenSource::Command(_))
    }
}

/// Runs `token_command` with `sh -c` and reads its token.
async fn run_command(command: &str) -> Result<(String, Option<Duration>), ImapError> {
    let fail = |reason: String| ImapError::Token { reason: format!("token_command `{command}` {reason}") };
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = match tokio::time::timeout(COMMAND_TIMEOUT, child).await {
        Ok(Ok(output)) => output,
        Ok(Err(err)) => return Err(fail(format!("cannot run: {err}"))),
        Err(_) => return Err(fail(format!("did not finish within {}s", COMMAND_TIMEOUT.as_secs()))),
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let said: String = stderr.trim().chars().take(300).collect();
        return Err(fail(format!("failed ({}): {said}", output.status)));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    parse_token(&stdout).ok_or_else(|| fail("printed no token".into()))
}

/// A bare token (the first non-empty line), or a token endpoint's JSON answer.
fn parse_token(text: &str) -> Option<(String, Option<Duration>)> {
    let text = text.trim();
    if text.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text).ok()?;
        let token = json.get("access_token")?.as_str()?.trim().to_owned();
        let lifetime = json.get("expires_in").and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()));
        return (!token.is_empty()).then_some((token, lifetime.map(Duration::from_secs)));
    }
    let token = text.lines().map(str::trim).find(|line| !line.is_empty())?;
    Some((token.to_owned(), None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sasl_payloads() {
        assert_eq!(plain("u", "p"), b"\0u\0p");
        assert_eq!(
            oauth(OAuthMechanism::XOAuth2, "dmarc@example.com", "imap.example.com", 993, "ya29.x"),
            b"user=dmarc@example.com\x01auth=Bearer ya29.x\x01\x01"
        );
        assert_eq!(
            oauth(OAuthMechanism::OAuthBearer, "a,b=c@example.com", "imap.example.com", 993, "t"),
            b"n,a=a=2Cb=3Dc@example.com,\x01host=imap.example.com\x01port=993\x01auth=Bearer t\x01\x01"
        );
    }

    #[test]
    fn tokens_are_bare_or_json() {
        assert_eq!(parse_token("\n  abc.def  \nignored\n"), Some(("abc.def".into(), None)));
        assert_eq!(
            parse_token(r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0"}"#),
            Some(("eyJ0".into(), Some(Duration::from_secs(3599))))
        );
        assert_eq!(
            parse_token(r#"{"expires_in":"3600","access_token":"x"}"#).map(|t| t.1),
            Some(Some(Duration::from_secs(3600)))
        );
        assert_eq!(parse_token(r#"{"error":"invalid_client"}"#), None);
        assert_eq!(parse_token("   \n"), None);
    }

    #[tokio::test]
    async fn a_command_token_is_kept_until_it_expires_or_is_rejected() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let counter = dir.path().join("runs");
        let command = format!(
            "n=$(cat {0} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}; echo '{{\"access_token\":\"token-'$n'\",\"expires_in\":3600}}'",
            counter.display()
        );
        let mut tokens = Tokens::new(TokenSource::Command(command));
        let first = tokens.get().await.expect("a token");
        assert_eq!((first.value.as_str(), first.fresh), ("token-1", true));
        let again = tokens.get().await.expect("a token");
        assert_eq!((again.value.as_str(), again.fresh), ("token-1", false));
        tokens.forget();
        assert_eq!(tokens.get().await.expect("a token").value, "token-2");

        let mut expiring =
            Tokens::new(TokenSource::Command("echo '{\"access_token\":\"short\",\"expires_in\":30}'".into()));
        assert!(expiring.get().await.expect("a token").fresh);
        assert!(expiring.get().await.expect("a token").fresh, "a token within the margin of its expiry is renewed");

        let failing = Tokens::new(TokenSource::Command("echo 'invalid_client' >&2; exit 3".into())).get().await;
        let err = failing.expect_err("the command fails").to_string();
        assert!(err.contains("invalid_client") && err.contains("exit status: 3"), "{err}");
    }

    #[tokio::test]
    async fn a_token_file_is_read_at_every_login() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let file = dir.path().join("token");
        std::fs::write(&file, "first\n").expect("written");
        let mut tokens = Tokens::new(TokenSource::File(file.clone()));
        assert_eq!(tokens.get().await.expect("a token").value, "first");
        // Its writer renewed it: the next login uses the new one.
        std::fs::write(&file, "{\"access_token\":\"second\",\"expires_in\":3600}").expect("written");
        let second = tokens.get().await.expect("a token");
        assert_eq!((second.value.as_str(), second.fresh), ("second", true));
        assert!(!tokens.renewable(), "a rejected file token is final until the file changes");
        std::fs::remove_file(&file).expect("removed");
        let err = tokens.get().await.expect_err("no file").to_string();
        assert!(err.contains("cannot read token_file"), "{err}");
    }
}
