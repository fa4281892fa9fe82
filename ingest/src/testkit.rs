//! Report inputs made to order, for tests and the benchmark (feature `testkit`).
//!
//! [`ReportBuilder`] writes aggregate report XML in the RFC 7489 shape the big reporters use;
//! [`gzip`], [`zip`] and [`mail_with_attachment`] wrap it the ways reporters send it. Records
//! can be listed one by one or generated from a seed (sources from the benchmarking range
//! 198.18.0.0/15 and 2001:db8::/32), so that two runs produce the same bytes.
//! [`dnsmasq`] runs a real DNS server on loopback with records made to order; [`unbound`] one
//! that answers reverse queries fast, for the benchmark; [`mmdb`] writes geolocation databases
//! (MMDB) made to order.

pub mod dnsmasq;
pub mod mmdb;
pub mod unbound;

use std::fmt::Write as _;
use std::io::Write as _;

/// One record of a report to build.
#[derive(Debug, Clone)]
pub struct RecordSpec {
    pub source_ip: String,
    pub count: u64,
    pub disposition: &'static str,
    pub dkim: &'static str,
    pub spf: &'static str,
}

/// An aggregate report to write as XML.
#[derive(Debug, Clone)]
pub struct ReportBuilder {
    pub org_name: String,
    pub email: String,
    pub report_id: String,
    pub domain: String,
    pub begin: u64,
    pub end: u64,
    pub records: Vec<RecordSpec>,
}

/// xorshift64*: deterministic and dependency-free.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

impl ReportBuilder {
    /// A one-day report (`begin` is seconds since the epoch).
    pub fn new(org_name: &str, report_id: &str, domain: &str, begin: u64) -> Self {
        ReportBuilder {
            org_name: org_name.to_owned(),
            email: format!("dmarc@{}", org_name.to_lowercase().replace(' ', "-")),
            report_id: report_id.to_owned(),
            domain: domain.to_owned(),
            begin,
            end: begin + 86_399,
            records: Vec::new(),
        }
    }

    pub fn record(
        mut self,
        source_ip: &str,
        count: u64,
        disposition: &'static str,
        dkim: &'static str,
        spf: &'static str,
    ) -> Self {
        self.records.push(RecordSpec { source_ip: source_ip.to_owned(), count, disposition, dkim, spf });
        self
    }

    /// Adds `n` records drawn from `rng`: mostly passing, some failing and quarantined or
    /// rejected, one source in ten IPv6.
    pub fn random_records(mut self, n: u64, rng: &mut Rng) -> Self {
        for _ in 0..n {
            let dkim_pass = rng.below(10) < 8;
            let spf_pass = rng.below(10) < 7;
            let disposition =
                if dkim_pass || spf_pass { "none" } else { ["none", "quarantine", "reject"][rng.below(3) as usize] };
            let source_ip = if rng.below(10) == 0 {
                format!("2001:db8:{:x}::{:x}", rng.below(0xffff), rng.below(0xffff) + 1)
            } else {
                let n = rng.below(1 << 17);
                format!("198.{}.{}.{}", 18 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
            };
            self.records.push(RecordSpec {
                source_ip,
                count: 1 + rng.below(50),
                disposition,
                dkim: if dkim_pass { "pass" } else { "fail" },
                spf: if spf_pass { "pass" } else { "fail" },
            });
        }
        self
    }

    /// Total of the records' counts.
    pub fn messages(&self) -> u64 {
        self.records.iter().map(|r| r.count).sum()
    }

    /// The file name reporters give it (RFC 7489 section 7.2.1.1), without extension.
    pub fn file_stem(&self) -> String {
        format!("{}!{}!{}!{}", self.org_name.to_lowercase().replace(' ', "-"), self.domain, self.begin, self.end)
    }

    pub fn xml(&self) -> String {
        let mut xml = String::with_capacity(800 + self.records.len() * 560);
        let _ = write!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<feedback>\n  <version>1.0</version>\n  <report_metadata>\n    \
             <org_name>{}</org_name>\n    <email>{}</email>\n    <report_id>{}</report_id>\n    <date_range>\n      \
             <begin>{}</begin>\n      <end>{}</end>\n    </date_range>\n  </report_metadata>\n  <policy_published>\n    \
             <domain>{}</domain>\n    <adkim>r</adkim>\n    <aspf>r</aspf>\n    <p>reject</p>\n    <sp>reject</sp>\n    \
             <pct>100</pct>\n    <fo>0</fo>\n  </policy_published>\n",
            self.org_name, self.email, self.report_id, self.begin, self.end, self.domain
        );
        for record in &self.records {
            let _ = write!(
                xml,
                "  <record>\n    <row>\n      <source_ip>{ip}</source_ip>\n      <count>{count}</count>\n      \
                 <policy_evaluated>\n        <disposition>{disposition}</disposition>\n        <dkim>{dkim}</dkim>\n        \
                 <spf>{spf}</spf>\n      </policy_evaluated>\n    </row>\n    <identifiers>\n      \
                 <header_from>{domain}</header_from>\n    </identifiers>\n    <auth_results>\n      <dkim>\n        \
                 <domain>{domain}</domain>\n        <selector>s1</selector>\n        <result>{dkim}</result>\n      \
                 </dkim>\n      <spf>\n        <domain>{domain}</domain>\n        <result>{spf}</result>\n      </spf>\n    \
                 </auth_results>\n  </record>\n",
                ip = record.source_ip,
                count = record.count,
                disposition = record.disposition,
                dkim = record.dkim,
                spf = record.spf,
                domain = self.domain,
            );
        }
        xml.push_str("</feedback>\n");
        xml
    }
}

/// Gzip with a fixed header (no name, time 0), as reproducible as the input.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::new(6));
    // Writing to memory cannot fail.
    let _ = encoder.write_all(data);
    encoder.finish().unwrap_or_default()
}

/// A zip archive of deflated entries.
pub fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, zip::CompressionMethod::Deflated)
}

/// A zip archive of stored (not compressed) entries: as large as what it holds.
pub fn zip_stored(entries: &[(&str, &[u8])]) -> Vec<u8> {
    zip_with(entries, zip::CompressionMethod::Stored)
}

fn zip_with(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .last_modified_time(zip::DateTime::default());
    for (name, data) in entries {
        let _ = writer.start_file(*name, options);
        let _ = writer.write_all(data);
    }
    writer.finish().map(|cursor| cursor.into_inner()).unwrap_or_default()
}

/// A report mail: a text part and the attachment, base64 in 76-column lines, CRLF.
pub fn mail_with_attachment(subject: &str, filename: &str, content_type: &str, attachment: &[u8]) -> Vec<u8> {
    mail_with_attachments(subject, &[(filename, content_type, attachment)])
}

/// A mail with a text part and these attachments `(file name, content type, bytes)`.
pub fn mail_with_attachments(subject: &str, attachments: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut mail = format!(
        "From: noreply-dmarc@reporter.example\r\nTo: dmarc-reports@example.com\r\nSubject: {subject}\r\n\
         Date: Mon, 02 Nov 2026 00:00:00 +0000\r\nMessage-ID: <{}@reporter.example>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"part-boundary\"\r\n\r\n--part-boundary\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nThis is an aggregate report.\r\n",
        attachments.first().map_or("mail", |(name, _, _)| name)
    );
    for (filename, content_type, attachment) in attachments {
        mail.push_str("--part-boundary\r\n");
        mail.push_str(&attachment_part(filename, content_type, attachment));
    }
    mail.push_str("--part-boundary--\r\n");
    mail.into_bytes()
}

/// A MIME part (headers and body) holding `attachment` in base64, 76-column lines, CRLF.
pub fn attachment_part(filename: &str, content_type: &str, attachment: &[u8]) -> String {
    let mut part = format!(
        "Content-Type: {content_type}; name=\"{filename}\"\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\n\r\n"
    );
    for chunk in base64(attachment).as_bytes().chunks(76) {
        part.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        part.push_str("\r\n");
    }
    part
}

/// A mail whose only content is `part` (a MIME part with its headers) inside `depth` nested
/// multiparts, each with its own boundary or all with the same one. Built in linear time, so
/// that a depth of 200,000 (15 MB) takes a moment.
pub fn nested_multiparts(part: &str, depth: usize, same_boundary: bool) -> Vec<u8> {
    let boundary = |level: usize| if same_boundary { "nest".to_owned() } else { format!("nest-{level}") };
    let mut mail = b"From: noreply-dmarc@reporter.example\r\nTo: dmarc-reports@example.com\r\n\
        Subject: nested\r\nMIME-Version: 1.0\r\n"
        .to_vec();
    for level in 0..depth {
        let b = boundary(level);
        let _ = write!(mail, "Content-Type: multipart/mixed; boundary=\"{b}\"\r\n\r\n--{b}\r\n");
    }
    mail.extend_from_slice(part.as_bytes());
    for level in (0..depth).rev() {
        let _ = write!(mail, "\r\n--{}--\r\n", boundary(level));
    }
    mail
}

/// A message as SMTP DATA sends it: lines ending in CRLF, a leading dot doubled (RFC 5321
/// §4.5.2); without the final `.` line.
pub fn smtp_data(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::{self, Opened};

    #[test]
    fn built_reports_parse_back() {
        let mut rng = Rng(7);
        let report = ReportBuilder::new("Reporter Example", "r-1", "example.com", 1_793_491_200)
            .record("192.0.2.1", 3, "none", "pass", "fail")
            .random_records(20, &mut rng);
        let Ok(Opened::Report(parsed)) = aggregate::parse(report.xml().as_bytes(), 32) else {
            panic!("a report");
        };
        assert_eq!(parsed.summary.record_count, 21);
        assert_eq!(parsed.summary.message_count as u64, report.messages());
        assert!(parsed.summary.warnings.is_empty(), "{:?}", parsed.summary.warnings);
        assert_eq!(base64(b"hello world"), "aGVsbG8gd29ybGQ=");
    }
}
