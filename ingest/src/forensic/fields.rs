//! The `Name: value` lines of a `message/feedback-report` part (RFC 5965 §3, RFC 5322 field
//! syntax): unfolding, comments, and the small value syntaxes ARF fields use.

/// The fields of a header-like block, unfolded, in order, names as written. Lines that are
/// neither a field nor a continuation are counted in `stray_lines`.
#[derive(Debug, Default)]
pub(crate) struct Fields {
    pub list: Vec<(String, String)>,
    pub stray_lines: usize,
}

/// Splits `text` into fields. Blank lines are skipped rather than ending the block: some
/// generators put one between groups of fields.
pub(crate) fn parse(text: &str) -> Fields {
    let mut fields = Fields::default();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            match fields.list.last_mut() {
                Some((_, value)) => {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                None => fields.stray_lines += 1,
            }
            continue;
        }
        match line.split_once(':') {
            Some((name, value)) if is_field_name(name) => {
                fields.list.push((name.to_owned(), value.trim().to_owned()));
            }
            _ => fields.stray_lines += 1,
        }
    }
    fields
}

fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

/// The value without RFC 5322 comments (`(...)`, nested, outside quotes), blanks collapsed.
pub(crate) fn without_comments(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut depth = 0u32;
    let mut quoted = false;
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first blank-separated token of the value once comments are gone, and whether
/// anything followed it.
pub(crate) fn first_token(value: &str) -> (String, bool) {
    let clean = without_comments(value);
    let mut tokens = clean.split_whitespace();
    let first = tokens.next().unwrap_or_default().to_owned();
    let more = tokens.next().is_some() || clean.len() != value.trim().len();
    (first, more)
}

/// An address as in `Original-Mail-From: <a@b.example>`: angle brackets dropped; `<>` (the null
/// reverse-path of bounces) is the empty string.
pub(crate) fn address(value: &str) -> String {
    let clean = without_comments(value);
    let trimmed = clean.trim();
    trimmed.strip_prefix('<').and_then(|rest| rest.strip_suffix('>')).unwrap_or(trimmed).trim().to_owned()
}

/// Every blank removed: folded base64 values (`DKIM-Canonicalized-Body`).
pub(crate) fn without_blanks(value: &str) -> String {
    value.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_unfolded_and_stray_lines_counted() {
        let fields =
            parse("Feedback-Type: auth-failure\r\nAuthentication-Results: mx.example;\r\n  dkim=fail\r\n\r\nnoise\r\n");
        assert_eq!(
            fields.list,
            vec![
                ("Feedback-Type".into(), "auth-failure".into()),
                ("Authentication-Results".into(), "mx.example; dkim=fail".into()),
            ]
        );
        assert_eq!(fields.stray_lines, 1);
    }

    #[test]
    fn comments_tokens_and_addresses() {
        assert_eq!(without_comments("dmarc (policy (nested)) x"), "dmarc x");
        assert_eq!(without_comments("\"a (not a comment)\""), "\"a (not a comment)\"");
        assert_eq!(first_token("192.0.2.1 (host.example)"), ("192.0.2.1".into(), true));
        assert_eq!(first_token(" dmarc "), ("dmarc".into(), false));
        assert_eq!(address("<a@b.example>"), "a@b.example");
        assert_eq!(address("<>"), "");
        assert_eq!(address("author=gen.example@forwarder.example"), "author=gen.example@forwarder.example");
        assert_eq!(without_blanks("VGhp cyBp\n    cyBh"), "VGhpcyBpcyBh");
    }
}
