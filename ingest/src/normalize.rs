//! Normalization of leaf values shared by the aggregate and forensic parsers: IP addresses,
//! timestamps, domains.
//!
//! Each function takes the text a reporter sent and returns the canonical value plus, when it
//! had to change more than surrounding blanks, a note saying what it did. The parser turns
//! notes into report warnings and keeps the original text in the record's `raw` map.

use std::net::{IpAddr, Ipv4Addr};

use chrono::{DateTime, Utc};

/// A value and what was done to obtain it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Normalized<T> {
    pub value: T,
    /// `(warning code, explanation)` when the text was not already canonical.
    pub note: Option<(&'static str, String)>,
}

impl<T> Normalized<T> {
    fn clean(value: T) -> Self {
        Normalized { value, note: None }
    }

    fn noted(value: T, code: &'static str, why: String) -> Self {
        Normalized { value, note: Some((code, why)) }
    }
}

/// Parses `source_ip` in any form seen in the wild: IPv4, IPv6 in every RFC 4291/5952
/// spelling, IPv4-mapped IPv6 (read as the IPv4 address it carries), with a zone id,
/// in brackets, with an `IPv6:` prefix, with zero-padded IPv4 octets.
pub(crate) fn ip_address(text: &str) -> Option<Normalized<IpAddr>> {
    let trimmed = text.trim();
    if let Ok(ip) = trimmed.parse::<IpAddr>() {
        return Some(match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => Normalized::noted(
                IpAddr::V4(v6.to_ipv4_mapped()?),
                "ip_normalized",
                format!("IPv4-mapped address `{trimmed}` read as IPv4"),
            ),
            // Upper case, leading zeros, uncompressed groups: valid, but not as we store it.
            _ if ip.to_string() != trimmed => {
                Normalized::noted(ip, "ip_normalized", format!("`{trimmed}` written in canonical form {ip}"))
            }
            _ => Normalized::clean(ip),
        });
    }
    let mut candidate = trimmed;
    let mut repairs = Vec::new();
    if let Some(inner) = candidate.strip_prefix('[').and_then(|c| c.strip_suffix(']')) {
        candidate = inner;
        repairs.push("brackets removed");
    }
    if let Some(rest) = candidate.get(..5).filter(|p| p.eq_ignore_ascii_case("ipv6:")).map(|_| &candidate[5..]) {
        candidate = rest;
        repairs.push("`IPv6:` prefix removed");
    }
    if let Some((address, _zone)) = candidate.split_once('%') {
        candidate = address;
        repairs.push("zone id removed");
    }
    let ip = match candidate.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_some() => {
            repairs.push("IPv4-mapped address read as IPv4");
            IpAddr::V4(v6.to_ipv4_mapped()?)
        }
        Ok(ip) => ip,
        Err(_) => {
            let v4 = zero_padded_ipv4(candidate)?;
            repairs.push("zero-padded octets read as decimal");
            IpAddr::V4(v4)
        }
    };
    Some(Normalized::noted(ip, "ip_normalized", format!("`{trimmed}` read as {ip}: {}", repairs.join(", "))))
}

/// `192.0.2.041` (Rust, like inet_pton, refuses leading zeros: they once meant octal).
fn zero_padded_ipv4(text: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// Report dates from this one on are refused as implausible (they would also create absurd
/// partitions): 2100-01-01, in seconds since the epoch.
const LATEST_SECONDS: i64 = 4_102_444_800;
/// The earliest date a number is read as milliseconds for: 2000-01-01. Early dates in seconds
/// are accepted (the RFC 9990 example itself is dated 1979), but a number that is neither a
/// date before 2100 in seconds nor one of this century in milliseconds is a mistake, not a
/// unit: the year 9999 in seconds (`253402300799`) would read as 1978 in milliseconds.
const EARLIEST_MILLISECONDS: i64 = 946_684_800_000;

/// Parses a `date_range` bound: integer seconds since the epoch, tolerating a fraction
/// (`1700006400.0`), milliseconds, and RFC 3339 text. The plausible window: seconds from 1970
/// to the end of 2099, or milliseconds from 2000 to the end of 2099 (so a number is
/// milliseconds only when it is too large to be seconds before 2100, from 12 digits on);
/// anything else is refused with both readings in the reason.
pub(crate) fn timestamp(text: &str) -> Result<Normalized<DateTime<Utc>>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("is empty".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) && text.parse::<i64>().is_err() {
        return Err(format!("`{text}` is implausible: far beyond 2099 whether read as seconds or milliseconds"));
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return epoch(seconds, text);
    }
    if let Some((whole, fraction)) = text.split_once('.')
        && !whole.is_empty()
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && let Ok(seconds) = whole.parse::<i64>()
    {
        let parsed = epoch(seconds, text)?;
        let why = match parsed.note {
            Some((_, why)) => format!("fraction dropped; {why}"),
            None => format!("`{text}` has a fraction of a second, dropped"),
        };
        return Ok(Normalized::noted(parsed.value, "timestamp_fractional", why));
    }
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        if moment.timestamp() >= LATEST_SECONDS {
            return Err(format!("`{text}` is implausible (after 2099)"));
        }
        return Ok(Normalized::noted(
            moment.with_timezone(&Utc),
            "timestamp_format",
            format!("`{text}` is a date, not seconds since the epoch"),
        ));
    }
    Err(format!("`{text}` is not a number of seconds since 1970"))
}

fn epoch(number: i64, text: &str) -> Result<Normalized<DateTime<Utc>>, String> {
    if number < 0 {
        return Err(format!("`{text}` is before 1970"));
    }
    let (seconds, note) = if number < LATEST_SECONDS {
        (number, None)
    } else if (EARLIEST_MILLISECONDS..LATEST_SECONDS.saturating_mul(1000)).contains(&number) {
        (number / 1000, Some(("timestamp_milliseconds", format!("`{text}` read as milliseconds"))))
    } else {
        return Err(format!(
            "`{text}` is implausible: as seconds it is {}, as milliseconds {} (dates are read as seconds \
             before 2100 or as milliseconds from 2000 to 2099)",
            day(number),
            day(number / 1000)
        ));
    };
    let value = DateTime::from_timestamp(seconds, 0).ok_or_else(|| format!("`{text}` is out of range"))?;
    Ok(Normalized { value, note })
}

/// The day `seconds` after the epoch falls on, for messages.
fn day(seconds: i64) -> String {
    DateTime::from_timestamp(seconds, 0)
        .map_or_else(|| "beyond the year 262,000".to_owned(), |moment| moment.format("%Y-%m-%d").to_string())
}

/// Checks a report period: an error when it ends before it begins, a note when it is
/// meaningfully longer than a day (reports normally cover one; periods that end a few seconds
/// or minutes after midnight, 86,401 to 87,483 s from self-hosted appliances, are ordinary).
/// `what` names the period in messages.
pub(crate) fn period(begin: DateTime<Utc>, end: DateTime<Utc>, what: &str) -> Result<Normalized<()>, String> {
    if end < begin {
        return Err(format!("{what} ends ({end}) before it begins ({begin})"));
    }
    let span = end - begin;
    if span > chrono::Duration::hours(25) {
        let days = span.num_seconds() as f64 / 86400.0;
        return Ok(Normalized::noted(
            (),
            "date_range_long",
            format!("{what} spans {days:.1} days (reports normally cover one)"),
        ));
    }
    Ok(Normalized::clean(()))
}

/// Lower-cases a domain and drops a trailing dot. Empty means absent.
pub(crate) fn domain(text: &str) -> Option<Normalized<String>> {
    let trimmed = text.trim();
    let without_dot = trimmed.strip_suffix('.').unwrap_or(trimmed);
    if without_dot.is_empty() {
        return None;
    }
    if without_dot.len() == trimmed.len() && !without_dot.bytes().any(|b| b.is_ascii_uppercase() || b >= 0x80) {
        return Some(Normalized::clean(without_dot.to_owned()));
    }
    let lower = without_dot.to_lowercase();
    Some(if lower == trimmed {
        Normalized::clean(lower)
    } else {
        let why = format!("`{trimmed}` read as `{lower}`");
        Normalized::noted(lower, "domain_normalized", why)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> Option<(String, bool)> {
        ip_address(text).map(|n| (n.value.to_string(), n.note.is_some()))
    }

    #[test]
    fn every_ip_form_of_the_wild() {
        assert_eq!(ip("192.0.2.1"), Some(("192.0.2.1".into(), false)));
        assert_eq!(ip("2001:db8::1"), Some(("2001:db8::1".into(), false)));
        assert_eq!(ip("2001:DB8:0:0:0:0:0:1"), Some(("2001:db8::1".into(), true)));
        assert_eq!(ip("2001:0db8:0000:0000:0000:0000:0000:0001"), Some(("2001:db8::1".into(), true)));
        assert_eq!(ip(" 192.0.2.40 "), Some(("192.0.2.40".into(), false)));
        assert_eq!(ip("::ffff:192.0.2.1"), Some(("192.0.2.1".into(), true)));
        assert_eq!(ip("fe80::1%eth0"), Some(("fe80::1".into(), true)));
        assert_eq!(ip("[2001:db8::2]"), Some(("2001:db8::2".into(), true)));
        assert_eq!(ip("IPv6:2001:db8::3"), Some(("2001:db8::3".into(), true)));
        assert_eq!(ip("192.0.2.041"), Some(("192.0.2.41".into(), true)));
        assert_eq!(ip(""), None);
        assert_eq!(ip("not-an-ip"), None);
        assert_eq!(ip("192.0.2.256"), None);
        assert_eq!(ip("1.2.3"), None);
    }

    #[test]
    fn timestamps_in_seconds_fractions_milliseconds_and_dates() {
        let t = |s: &str| timestamp(s).map(|n| (n.value.timestamp(), n.note.map(|(code, _)| code)));
        assert_eq!(t("1700006400"), Ok((1_700_006_400, None)));
        assert_eq!(t(" 1700006400 "), Ok((1_700_006_400, None)));
        assert_eq!(t("1700006400.0"), Ok((1_700_006_400, Some("timestamp_fractional"))));
        assert_eq!(t("1700006400123"), Ok((1_700_006_400, Some("timestamp_milliseconds"))));
        assert_eq!(t("2023-11-15T00:00:00Z"), Ok((1_700_006_400, Some("timestamp_format"))));
        assert!(t("-5").is_err());
        assert!(t("").is_err());
        assert!(t("yesterday").is_err());
    }

    #[test]
    fn timestamps_outside_the_plausible_window_are_refused_with_both_readings() {
        let t = |s: &str| timestamp(s).map(|n| (n.value.timestamp(), n.note.map(|(code, _)| code)));
        // Early dates in seconds stay what they say (the RFC 9990 example is dated 1979).
        assert_eq!(t("302832000"), Ok((302_832_000, None)));
        assert_eq!(t("100"), Ok((100, None)));
        // The last second before 2100, and milliseconds from 2000 to 2099.
        assert_eq!(t("4102444799"), Ok((4_102_444_799, None)));
        assert_eq!(t("946684800000"), Ok((946_684_800, Some("timestamp_milliseconds"))));
        assert_eq!(t("4102444799999"), Ok((4_102_444_799, Some("timestamp_milliseconds"))));
        // The year 9999 in seconds (12 digits) was read as milliseconds: 1978.
        assert_eq!(
            t("253402300799"),
            Err("`253402300799` is implausible: as seconds it is 9999-12-31, as milliseconds 1978-01-11 \
                 (dates are read as seconds before 2100 or as milliseconds from 2000 to 2099)"
                .to_owned())
        );
        for implausible in ["4102444800", "99999999999", "4102444800000", "9223372036854775807", "2100-01-01T00:00:00Z"]
        {
            assert!(t(implausible).is_err_and(|why| why.contains("implausible")), "{implausible}");
        }
        assert_eq!(
            t("99999999999999999999"),
            Err("`99999999999999999999` is implausible: far beyond 2099 whether read as seconds or milliseconds"
                .to_owned())
        );
        assert!(t("9223372036854775807").is_err_and(|why| why.contains("beyond the year 262,000")));
    }

    #[test]
    fn domains_are_lower_cased_without_trailing_dot() {
        assert_eq!(domain("example.com").map(|n| n.note.is_none()), Some(true));
        let n = domain("Example.COM.").expect("a domain");
        assert_eq!(n.value, "example.com");
        assert!(n.note.is_some());
        assert_eq!(domain("  "), None);
    }
}
