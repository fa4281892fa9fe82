//! `dmarcpipe digest --to ADDRESS... [--domain D] [--period day|week|month]`: the scheduled
//! mail for the people who own a domain's DMARC policy.
//!
//! The period ends at the start of today (UTC) and is compared with the period of the same
//! kind before it. Its figures come from the rollups (`dmarcpipe_store::digest`, the same sums
//! as `dmarcpipe report`), the bodies from `dmarcpipe_render::digest`: an HTML body made of
//! tables and inline styles (mail clients strip `<style>` and SVG) and a text/plain
//! alternative. Attached: the full visual report (the page of `report --format html`), its
//! executive summary as PDF (printed by headless Chromium; when Chromium is missing or fails,
//! the mail says so instead), and the rollups by day, source, reporter and domain as CSV.
//!
//! The message goes through the SMTP relay of `[digest]` (see `config.rs`) with lettre's tokio
//! transport, over STARTTLS, implicit TLS or plain SMTP; every failure names the relay. With
//! `--output FILE` the message is written there instead (to look at it before a timer sends it).

use anyhow::{Context, Result, anyhow, bail};
use chrono::{Days, Months, NaiveDate, Utc};
use dmarcpipe_render::digest::{Counts, Digest, DomainStanding, Rendered, Totals};
use dmarcpipe_render::report::page::Version;
use dmarcpipe_render::{Format, render};
use dmarcpipe_store::Store;
use dmarcpipe_store::digest::{self as figures, SourceCounts};
use dmarcpipe_store::forensic::CountKey;
use dmarcpipe_store::rollup::{self, RollupFilter, RollupKey};
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::connect;
use super::pdf::Chromium;
use super::report::{rollup_table, visual_html};
use crate::cli::{DigestArgs, DigestPeriod};
use crate::config::{DigestOverrides, DigestSettings, FileConfig, RelayTls};
use crate::exit;

/// Rows of the top sources and top failing sources tables.
const TOP: u32 = 5;
/// Domains judged for readiness in one mail.
const DOMAINS: u32 = 20;

pub async fn run(config: &FileConfig, database_url: Option<&str>, args: DigestArgs) -> Result<u8> {
    let overrides = DigestOverrides {
        relay: args.relay.clone(),
        port: args.port,
        tls: args.tls.clone(),
        username: args.username.clone(),
        from: args.from.clone(),
        to: args.to.clone(),
    };
    let settings = config.digest(&overrides)?;
    // Addresses are checked before anything is queried.
    let from = mailbox(&settings.from, "the sender address ([digest] from, --from)")?;
    let to = settings.to.iter().map(|to| mailbox(to, "recipient --to")).collect::<Result<Vec<_>>>()?;
    let period = Period::ending(args.period, Utc::now().date_naive());
    let domain = args.domain.as_deref().map(|domain| domain.trim().to_ascii_lowercase());

    let store = connect(config, database_url, 2).await?;
    let filter = period.filter(domain.clone());
    let mut digest = gather(&store, &filter, &period.previous_filter(domain.clone())).await?;
    digest.scope = domain.unwrap_or_else(|| "all domains".to_owned());
    digest.period = period.name().to_owned();
    digest.first_day = period.first.to_string();
    digest.last_day = period.last().to_string();
    digest.previous_first_day = period.previous_first.to_string();
    digest.previous_last_day = (period.first - Days::new(1)).to_string();
    let mut attachments = report_attachments(&store, &filter, &period, &mut digest.notes).await?;
    attachments.extend(rollup_attachments(&store, &filter, &period).await?);
    digest.attachments = attachments.iter().map(|(name, _)| name.clone()).collect();
    let rendered = dmarcpipe_render::digest::render(&digest).context("cannot render the digest (a template bug)")?;
    let message = compose(from, &to, rendered, attachments)?;

    if let Some(path) = &args.output {
        std::fs::write(path, message.formatted()).with_context(|| format!("cannot write {}", path.display()))?;
        tracing::info!(file = %path.display(), "Digest written, not sent.");
        return Ok(exit::OK);
    }
    let reply = match send(&settings, &message).await {
        Ok(reply) => reply,
        Err(Failure { message, transient: true }) => {
            // A relay that is down or says 4xx: EX_TEMPFAIL, a timer may try again.
            eprintln!("dmarcpipe: {message} (temporary: try again later)");
            return Ok(exit::TEMPFAIL);
        }
        Err(Failure { message, transient: false }) => bail!(message),
    };
    tracing::info!(
        to = %settings.to.join(", "),
        relay = %format!("{}:{}", settings.relay, settings.port),
        tls = settings.tls.name(),
        reply = %reply,
        "Digest sent."
    );
    Ok(exit::OK)
}

/// An address as given (`a@example.com` or `Name <a@example.com>`), or an error naming it.
fn mailbox(text: &str, what: &str) -> Result<Mailbox> {
    text.trim().parse().map_err(|err| anyhow!("{what} `{text}` is not an e-mail address: {err}"))
}

/// A period of whole UTC days ending at the start of a day, and the period before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    kind: DigestPeriod,
    first: NaiveDate,
    /// The day after the last (exclusive).
    end: NaiveDate,
    previous_first: NaiveDate,
}

impl Period {
    fn ending(kind: DigestPeriod, today: NaiveDate) -> Period {
        let back = |day: NaiveDate| match kind {
            DigestPeriod::Day => day - Days::new(1),
            DigestPeriod::Week => day - Days::new(7),
            // From the same day of the month before (the 31st goes back to the month's last day).
            DigestPeriod::Month => day.checked_sub_months(Months::new(1)).unwrap_or(day - Days::new(30)),
        };
        let first = back(today);
        Period { kind, first, end: today, previous_first: back(first) }
    }

    fn last(&self) -> NaiveDate {
        self.end - Days::new(1)
    }

    fn name(&self) -> &'static str {
        match self.kind {
            DigestPeriod::Day => "day",
            DigestPeriod::Week => "week",
            DigestPeriod::Month => "month",
        }
    }

    fn filter(&self, domain: Option<String>) -> RollupFilter {
        RollupFilter { domain, since: Some(self.first), until: Some(self.end) }
    }

    fn previous_filter(&self, domain: Option<String>) -> RollupFilter {
        RollupFilter { domain, since: Some(self.previous_first), until: Some(self.first) }
    }
}

/// The figures of the period (`filter`) and of the one before (`previous`).
async fn gather(store: &Store, filter: &RollupFilter, previous: &RollupFilter) -> Result<Digest> {
    let pool = store.pool();
    let context = "cannot query the rollups for the digest";
    let current = figures::totals(pool, filter).await.context(context)?;
    let before = figures::totals(pool, previous).await.context(context)?;
    let results = rollup::query(pool, RollupKey::Result, filter).await.context(context)?;
    let top_sources = figures::top_sources(pool, filter, TOP).await.context(context)?;
    let failing_sources = figures::failing_sources(pool, filter, TOP).await.context(context)?;
    let domains = figures::domains(pool, filter, DOMAINS).await.context(context)?;
    Ok(Digest {
        current: Totals::from(&current),
        previous: Totals::from(&before),
        results: results
            .into_iter()
            .map(|row| Counts {
                key: row.key,
                domain: None,
                messages: row.messages.0,
                dmarc_pass: row.dmarc_pass.0,
                dmarc_fail: row.dmarc_fail.0,
                dkim_aligned: row.dkim_aligned.0,
                spf_aligned: row.spf_aligned.0,
                disposition_none: row.disposition_none.0,
                disposition_quarantine: row.disposition_quarantine.0,
                disposition_reject: row.disposition_reject.0,
            })
            .collect(),
        top_sources: top_sources.iter().map(source_counts).collect(),
        failing_sources: failing_sources.iter().map(source_counts).collect(),
        domains: domains.into_iter().map(DomainStanding::from).collect(),
        ..Digest::default()
    })
}

fn source_counts(row: &SourceCounts) -> Counts {
    Counts {
        key: row.source.clone(),
        domain: row.domain.clone(),
        messages: row.messages.0,
        dmarc_pass: row.dmarc_pass.0,
        dmarc_fail: row.dmarc_fail.0,
        dkim_aligned: row.dkim_aligned.0,
        spf_aligned: row.spf_aligned.0,
        disposition_none: row.disposition_none.0,
        disposition_quarantine: row.disposition_quarantine.0,
        disposition_reject: row.disposition_reject.0,
    }
}

/// The visual report of the period (HTML) and its executive summary (PDF); a note instead of
/// the PDF when it cannot be printed.
async fn report_attachments(
    store: &Store,
    filter: &RollupFilter,
    period: &Period,
    notes: &mut Vec<String>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let name = format!("dmarc-report-{}-{}", period.first, period.last());
    let html = visual_html(store, filter, Version::Full).await?;
    let mut files = vec![(format!("{name}.html"), html.into_bytes())];
    let printed = match Chromium::find() {
        Ok(chromium) => {
            let summary = visual_html(store, filter, Version::Executive).await?;
            tokio::task::spawn_blocking(move || chromium.pdf_bytes(&summary)).await.context("the PDF task failed")?
        }
        Err(err) => Err(err),
    };
    match printed {
        Ok(pdf) => files.push((format!("{name}.pdf"), pdf)),
        Err(err) => {
            tracing::warn!(error = format!("{err:#}"), "The digest goes without its PDF.");
            notes.push(format!("The PDF summary is not attached: {err:#}."));
        }
    }
    Ok(files)
}

/// The rollups of the period as CSV files (the columns of `dmarcpipe report --format csv`).
async fn rollup_attachments(store: &Store, filter: &RollupFilter, period: &Period) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for (key, forensic) in [
        (RollupKey::Day, Some(CountKey::Day)),
        (RollupKey::Domain, Some(CountKey::Domain)),
        (RollupKey::Org, None),
        (RollupKey::Source, Some(CountKey::Source)),
    ] {
        let table = rollup_table(store, key, forensic, filter).await?;
        let name = format!("dmarc-{}-{}-by-{}.csv", period.first, period.last(), key.name());
        files.push((name, render(&table, Format::Csv).into_bytes()));
    }
    Ok(files)
}

/// The message: mixed[alternative[text/plain, text/html], attachments...].
fn compose(from: Mailbox, to: &[Mailbox], rendered: Rendered, attachments: Vec<(String, Vec<u8>)>) -> Result<Message> {
    let mut builder = Message::builder().from(from).subject(rendered.subject);
    for to in to {
        builder = builder.to(to.clone());
    }
    let mut body = MultiPart::mixed().multipart(MultiPart::alternative_plain_html(rendered.text, rendered.html));
    for (name, bytes) in attachments {
        let content_type = match name.rsplit_once('.').map(|(_, extension)| extension) {
            Some("csv") => "text/csv; charset=utf-8",
            Some("html") => "text/html; charset=utf-8",
            Some("pdf") => "application/pdf",
            _ => "application/octet-stream",
        };
        let content_type =
            ContentType::parse(content_type).map_err(|err| anyhow!("content type {content_type}: {err}"))?;
        body = body.singlepart(Attachment::new(name).body(bytes, content_type));
    }
    builder.multipart(body).context("cannot build the digest message")
}

/// Why the digest was not sent, naming the relay; `transient` when trying again later may
/// work (the relay cannot be reached, times out, or replies 4xx).
#[derive(Debug)]
struct Failure {
    message: String,
    transient: bool,
}

/// Sends `message` through the relay; the relay's reply on success.
async fn send(settings: &DigestSettings, message: &Message) -> Result<String, Failure> {
    let relay = format!("{}:{} (tls = {})", settings.relay, settings.port, settings.tls.name());
    let transport = transport(settings)
        .map_err(|err| Failure { message: format!("SMTP relay {relay}: {err:#}"), transient: false })?;
    // lettre's timeout bounds each command and reply (the connection, TLS, each SMTP step).
    let response = transport.send(message.clone()).await.map_err(|err| Failure {
        message: format!("cannot send the digest through the SMTP relay {relay}: {}", smtp_error(&err)),
        transient: err.is_transient() || err.is_timeout() || unreachable(&err),
    })?;
    Ok(response.message().collect::<Vec<_>>().join(" "))
}

/// Whether the relay could not be reached (refused, reset, unreachable), rather than a TLS
/// handshake that failed (an untrusted certificate is no reason to try again).
fn unreachable(err: &lettre::transport::smtp::Error) -> bool {
    use std::io::ErrorKind;
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::NotConnected
                    | ErrorKind::BrokenPipe
                    | ErrorKind::TimedOut
                    | ErrorKind::HostUnreachable
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::AddrNotAvailable
                    | ErrorKind::UnexpectedEof
            );
        }
        source = cause.source();
    }
    false
}

fn transport(settings: &DigestSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>> {
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.relay.as_str())
        .port(settings.port)
        .timeout(Some(settings.timeout));
    if settings.tls != RelayTls::None {
        let mut parameters = TlsParameters::builder(settings.relay.clone());
        if let Some(file) = &settings.ca_file {
            let pem = std::fs::read(file).with_context(|| format!("cannot read ca_file {}", file.display()))?;
            let certificate = Certificate::from_pem(&pem)
                .map_err(|err| anyhow!("ca_file {}: not a PEM certificate: {err}", file.display()))?;
            parameters = parameters.add_root_certificate(certificate);
        }
        let parameters = parameters.build_rustls().context("cannot set up TLS")?;
        builder = builder.tls(match settings.tls {
            RelayTls::Tls => Tls::Wrapper(parameters),
            _ => Tls::Required(parameters),
        });
    }
    if let Some((user, password)) = &settings.credentials {
        builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
    }
    Ok(builder.build())
}

/// lettre's error with its causes (the connection error, the TLS alert, the reply), each part
/// said once (lettre repeats "Connection error" in its own text).
fn smtp_error(err: &lettre::transport::smtp::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    let mut parts: Vec<&str> = text.split(": ").collect();
    parts.dedup();
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").expect("a date")
    }

    #[test]
    fn periods_end_at_the_start_of_today_and_follow_the_period_before() {
        let today = day("2026-03-31");
        let week = Period::ending(DigestPeriod::Week, today);
        assert_eq!(
            (week.first, week.last(), week.previous_first),
            (day("2026-03-24"), day("2026-03-30"), day("2026-03-17"))
        );
        let yesterday = Period::ending(DigestPeriod::Day, today);
        assert_eq!(
            (yesterday.first, yesterday.last(), yesterday.previous_first),
            (day("2026-03-30"), day("2026-03-30"), day("2026-03-29"))
        );
        let month = Period::ending(DigestPeriod::Month, today);
        assert_eq!(
            (month.first, month.last(), month.previous_first),
            (day("2026-02-28"), day("2026-03-30"), day("2026-01-28"))
        );
        let filter = month.previous_filter(Some("example.org".into()));
        assert_eq!((filter.since, filter.until), (Some(day("2026-01-28")), Some(day("2026-02-28"))));
    }

    #[test]
    fn bad_addresses_are_named() {
        let err = mailbox("not an address", "recipient --to").expect_err("refused").to_string();
        assert!(err.starts_with("recipient --to `not an address` is not an e-mail address"), "{err}");
        assert!(mailbox("DMARC digest <dmarc@example.com>", "from").is_ok());
    }
}
