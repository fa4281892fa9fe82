//! Leaf values of TLS reports as reporters write them: date-times and session counts.
//!
//! Each function takes what the reporter sent and returns the canonical value plus, when it
//! had to do more than trim blanks, a note `(warning code, explanation)`; the parser turns
//! notes into warnings and keeps the original text in `raw`. Values nothing can be made of
//! are errors, worded for the operator.

use super::node::Node;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeZone, Utc};

/// A note on a normalized value: the warning code and what was done.
pub(crate) type Note = Option<(&'static str, String)>;

/// An RFC 3339 date-time (`2026-11-01T00:00:00Z`), tolerating what reporters send instead:
/// no UTC offset (Microsoft: read as UTC), no seconds, a space for the `T`, a date alone
/// (midnight UTC), seconds since 1970. An offset other than zero is valid RFC 3339 and is
/// converted to UTC, noted because the RFC asks for UTC days.
pub(crate) fn datetime(text: &str) -> Result<(DateTime<Utc>, Note), String> {
    let text = text.trim();
    if let Ok(moment) = DateTime::parse_from_rfc3339(text)
        && text.as_bytes().get(10).is_some_and(|b| b.eq_ignore_ascii_case(&b'T'))
    {
        let utc = moment.with_timezone(&Utc);
        if moment.offset().local_minus_utc() == 0 {
            return Ok((utc, None));
        }
        let why = format!("`{text}` converted to UTC: {}", utc_text(utc));
        return Ok((utc, Some(("datetime_offset", why))));
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = text.parse().map_err(|_| format!("`{text}` is out of range"))?;
        let utc = DateTime::from_timestamp(seconds, 0).ok_or_else(|| format!("`{text}` is out of range"))?;
        let why = format!("`{text}` read as seconds since 1970: {}", utc_text(utc));
        return Ok((utc, Some(("datetime_format", why))));
    }
    let mut repairs = Vec::new();
    let mut body = text.to_owned();
    if body.as_bytes().get(10) == Some(&b' ') {
        body.replace_range(10..11, "T");
        repairs.push("a space for the `T`");
    }
    let (local, offset) = split_offset(&body).ok_or_else(|| not_a_datetime(text))?;
    let (naive, code) = if let Ok(naive) = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f") {
        (naive, "datetime_format")
    } else if let Ok(naive) = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M") {
        repairs.push("no seconds");
        (naive, "datetime_no_seconds")
    } else if let Ok(day) = NaiveDate::parse_from_str(local, "%Y-%m-%d") {
        repairs.push("a date without a time (midnight)");
        (day.and_time(NaiveTime::MIN), "datetime_format")
    } else {
        return Err(not_a_datetime(text));
    };
    let (utc, code) = match offset {
        None => {
            repairs.push("no UTC offset (read as UTC)");
            (Utc.from_utc_datetime(&naive), "datetime_no_offset")
        }
        Some(offset) => {
            let moment = offset.from_local_datetime(&naive).single().ok_or_else(|| not_a_datetime(text))?;
            if offset.local_minus_utc() != 0 {
                repairs.push("converted to UTC");
            }
            let code =
                if code == "datetime_format" && offset.local_minus_utc() != 0 { "datetime_offset" } else { code };
            (moment.with_timezone(&Utc), code)
        }
    };
    Ok((utc, Some((code, format!("`{text}` read as {}: {}", utc_text(utc), repairs.join(", "))))))
}

fn not_a_datetime(text: &str) -> String {
    format!("`{text}` is not a date-time (RFC 3339, such as 2026-11-01T00:00:00Z)")
}

fn utc_text(moment: DateTime<Utc>) -> String {
    moment.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Splits `2026-11-01T00:00+02:00` into its local part and offset (`Z` is zero; no offset
/// is `None`). `None` overall when the offset is malformed.
fn split_offset(text: &str) -> Option<(&str, Option<FixedOffset>)> {
    if let Some(local) = text.strip_suffix(['Z', 'z']) {
        return Some((local, FixedOffset::east_opt(0)));
    }
    // A sign after the time's start (the date has `-` of its own).
    let Some(sign_at) = text.get(11..).and_then(|time| time.rfind(['+', '-'])).map(|at| at + 11) else {
        return Some((text, None));
    };
    let (local, zone) = text.split_at(sign_at);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    if hours > 23 || minutes > 59 {
        return None;
    }
    Some((local, Some(FixedOffset::east_opt(sign * (hours * 3600 + minutes * 60))?)))
}

/// A session count: a non-negative JSON integer; also an integer-valued float (`12.0`) or a
/// string of digits (`"12"`), noted. `path` names the member in errors.
pub(crate) fn count(value: &Node, path: &str) -> Result<(i64, Note), String> {
    let invalid = || format!("`{path}` is {}, not a number of sessions", describe(value));
    match value {
        Node::Number(number) => {
            if let Some(count) = number.as_i64() {
                return if count < 0 { Err(format!("`{path}` is negative ({count})")) } else { Ok((count, None)) };
            }
            if number.as_u64().is_some() {
                return Err(format!("`{path}` is too large ({number})"));
            }
            match number.as_f64() {
                Some(float) if float.fract() == 0.0 && (0.0..9.0e18).contains(&float) => Ok((
                    float as i64,
                    Some(("number_format", "session counts written with a fraction (`12.0`) read as integers".into())),
                )),
                _ => Err(invalid()),
            }
        }
        Node::String(text) => match text.trim().parse::<i64>() {
            Ok(count) if count >= 0 => {
                Ok((count, Some(("number_as_string", "session counts sent as strings read as numbers".into()))))
            }
            Ok(count) => Err(format!("`{path}` is negative ({count})")),
            Err(_) => Err(invalid()),
        },
        _ => Err(invalid()),
    }
}

/// How a JSON value looks, for messages: `the string "abc"`, `an array`.
pub(crate) fn describe(value: &Node) -> String {
    match value {
        Node::Null => "null".into(),
        Node::Bool(b) => format!("the boolean {b}"),
        Node::Number(n) => format!("the number {n}"),
        Node::String(s) => {
            let shown: String = s.chars().take(60).collect();
            let more = if shown.len() < s.len() { "…" } else { "" };
            format!("the string \"{shown}{more}\"")
        }
        Node::Array(_) => "an array".into(),
        Node::Object(_) => "an object".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (String, Option<&'static str>) {
        let (moment, note) = datetime(text).expect("a date-time");
        (moment.to_rfc3339_opts(SecondsFormat::AutoSi, true), note.map(|(code, _)| code))
    }

    #[test]
    fn rfc3339_utc_is_clean() {
        assert_eq!(read("2026-11-01T00:00:00Z"), ("2026-11-01T00:00:00Z".into(), None));
        assert_eq!(read(" 2026-11-01T23:59:59+00:00 "), ("2026-11-01T23:59:59Z".into(), None));
        assert_eq!(read("2026-11-01t12:00:00.250z"), ("2026-11-01T12:00:00.250Z".into(), None));
    }

    #[test]
    fn deviations_are_read_and_noted() {
        // Microsoft: no offset at all.
        assert_eq!(read("2023-01-10T00:00:00"), ("2023-01-10T00:00:00Z".into(), Some("datetime_no_offset")));
        assert_eq!(read("2026-11-01T00:00Z"), ("2026-11-01T00:00:00Z".into(), Some("datetime_no_seconds")));
        assert_eq!(read("2026-11-01T02:00:00+02:00"), ("2026-11-01T00:00:00Z".into(), Some("datetime_offset")));
        assert_eq!(read("2026-10-31T19:00-0500"), ("2026-11-01T00:00:00Z".into(), Some("datetime_no_seconds")));
        assert_eq!(read("2026-11-01 00:00:00Z"), ("2026-11-01T00:00:00Z".into(), Some("datetime_format")));
        assert_eq!(read("2026-11-01"), ("2026-11-01T00:00:00Z".into(), Some("datetime_no_offset")));
        assert_eq!(read("1793491200"), ("2026-11-01T00:00:00Z".into(), Some("datetime_format")));
        let (_, note) = datetime("2026-11-01T00:00").expect("read");
        let (_, why) = note.expect("noted");
        assert!(why.contains("no seconds") && why.contains("no UTC offset"), "{why}");
    }

    #[test]
    fn nonsense_is_refused() {
        for text in ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-01T00:00:00+25:00", "2026-11-01T00:00:00+2"] {
            assert!(datetime(text).is_err(), "{text}");
        }
    }

    #[test]
    fn counts_as_numbers_floats_and_strings() {
        let c = |v: serde_json::Value| {
            let node: Node = serde_json::from_value(v).expect("a node");
            count(&node, "x").map(|(n, note)| (n, note.map(|(code, _)| code)))
        };
        assert_eq!(c(serde_json::json!(12)), Ok((12, None)));
        assert_eq!(c(serde_json::json!(12.0)), Ok((12, Some("number_format"))));
        assert_eq!(c(serde_json::json!(" 12 ")), Ok((12, Some("number_as_string"))));
        assert!(c(serde_json::json!(-1)).is_err());
        assert!(c(serde_json::json!("-1")).is_err());
        assert!(c(serde_json::json!(1.5)).is_err());
        assert!(c(serde_json::json!(u64::MAX)).is_err());
        assert!(c(serde_json::json!("n/a")).is_err());
        assert!(c(serde_json::json!([1])).is_err());
    }
}
