//! Modified UTF-7 (RFC 3501 §5.1.3), the form IMAP4rev1 servers expect folder names in.
//!
//! Input: a folder name in UTF-8 as the user wrote it. Output: the name as sent on the wire:
//! printable ASCII stays as it is (`&` becomes `&-`), every other run of characters becomes
//! `&` + their UTF-16 in base64 with `,` for `/` and no padding + `-`. No crate we use does it.

/// The modified-UTF-7 form of `name`.
pub(super) fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Writes a run of non-ASCII UTF-16 units as `&...-`.
fn flush(units: &mut Vec<u16>, out: &mut String) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";
    if units.is_empty() {
        return;
    }
    let bytes: Vec<u8> = units.iter().flat_map(|unit| unit.to_be_bytes()).collect();
    out.push('&');
    for chunk in bytes.chunks(3) {
        let word = chunk.iter().enumerate().fold(0u32, |word, (i, byte)| word | (u32::from(*byte) << (16 - 8 * i)));
        // Only as many characters as carry bits: no `=` padding in this form.
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((word >> (18 - 6 * i)) & 0x3f) as usize]));
        }
    }
    out.push('-');
    units.clear();
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn ascii_stays_and_ampersands_are_escaped() {
        assert_eq!(encode("INBOX"), "INBOX");
        assert_eq!(encode("DMARC/Not reports"), "DMARC/Not reports");
        assert_eq!(encode("Reports & more"), "Reports &- more");
    }

    #[test]
    fn other_characters_are_base64_of_utf16() {
        // The examples of RFC 3501 §5.1.3.
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("Éléments envoyés"), "&AMk-l&AOk-ments envoy&AOk-s");
        // A character outside the BMP is a surrogate pair.
        assert_eq!(encode("📬"), "&2D3c7A-");
    }
}
