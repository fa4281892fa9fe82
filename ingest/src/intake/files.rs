//! Turns the paths given to `dmarcpipe import` into envelopes.
//!
//! - A regular file is one input, streamed from disk (so a 600 MB report never sits in memory).
//! - A file that starts with an mbox `From ` line is split into its messages, one input each
//!   (`>From ` quoting undone), read one message at a time.
//! - A maildir (a directory with `cur/` and `new/`) yields the messages in `new/` and `cur/`,
//!   and its `.Subfolder` maildirs; `tmp/` and the server's index files are left alone.
//! - Any other directory is walked recursively in name order; hidden entries are skipped.
//!
//! Symbolic links are followed, with loop detection. Unreadable paths become [`WalkError`]s
//! and the walk goes on.

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::envelope::{Envelope, Origin, Payload};

/// A path that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct WalkError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// An iterator over the inputs below some paths; see the module documentation.
#[derive(Debug)]
pub struct Walk {
    pending: VecDeque<PathBuf>,
    visited_dirs: HashSet<PathBuf>,
    mbox: Option<MboxReader>,
    max_message_bytes: u64,
    read_up_to: u64,
    excluded: Vec<String>,
}

impl Walk {
    pub fn new(paths: impl IntoIterator<Item = PathBuf>, max_message_bytes: u64) -> Self {
        Walk {
            pending: paths.into_iter().collect(),
            visited_dirs: HashSet::new(),
            mbox: None,
            max_message_bytes,
            read_up_to: 0,
            excluded: Vec::new(),
        }
    }

    /// Skips files found in directories whose name matches one of these patterns (`*` matches
    /// any run of characters: `*.expected.json`). Paths given directly are never skipped.
    pub fn excluding(mut self, patterns: impl IntoIterator<Item = String>) -> Self {
        self.excluded.extend(patterns);
        self
    }

    fn is_excluded(&self, path: &Path) -> bool {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        self.excluded.iter().any(|pattern| glob_match(pattern, name))
    }

    /// Files up to this size are read into memory by the walk (which runs on its own thread),
    /// larger ones are left to be streamed from disk.
    pub fn read_files_up_to(mut self, bytes: u64) -> Self {
        self.read_up_to = bytes;
        self
    }

    fn error(path: &Path, source: io::Error) -> Option<Result<Envelope, WalkError>> {
        Some(Err(WalkError { path: path.to_path_buf(), source }))
    }

    /// Queues the entries of a directory, or of a maildir's `new/` and `cur/`.
    fn expand_directory(&mut self, dir: &Path) -> io::Result<()> {
        let canonical = fs::canonicalize(dir)?;
        if !self.visited_dirs.insert(canonical) {
            return Ok(());
        }
        let is_maildir = dir.join("cur").is_dir() && dir.join("new").is_dir();
        let mut children = Vec::new();
        if is_maildir {
            for sub in ["new", "cur"] {
                children.extend(sorted_entries(&dir.join(sub))?.into_iter().filter(|p| !is_hidden(p)));
            }
            // Maildir++ subfolders: `.Reports`, `.Archive.2026`.
            children.extend(
                sorted_entries(dir)?
                    .into_iter()
                    .filter(|p| is_hidden(p) && p.is_dir() && p.join("cur").is_dir() && p.join("new").is_dir()),
            );
        } else {
            children.extend(sorted_entries(dir)?.into_iter().filter(|p| !is_hidden(p)));
        }
        children.retain(|child| child.is_dir() || !self.is_excluded(child));
        // Depth-first, in name order.
        for child in children.into_iter().rev() {
            self.pending.push_front(child);
        }
        Ok(())
    }
}

fn sorted_entries(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut entries = fs::read_dir(dir)?.map(|entry| entry.map(|e| e.path())).collect::<io::Result<Vec<_>>>()?;
    entries.sort();
    Ok(entries)
}

/// `*` matches any run of characters; everything else matches itself.
fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn is_hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

impl Iterator for Walk {
    type Item = Result<Envelope, WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(mbox) = &mut self.mbox {
                match mbox.next_message(self.max_message_bytes) {
                    Ok(Some((index, bytes))) => {
                        let origin = Origin::Mbox { path: mbox.path.clone(), index };
                        return Some(Ok(Envelope::new(origin, Payload::Bytes(bytes))));
                    }
                    Ok(None) => self.mbox = None,
                    Err(err) => {
                        let path = mbox.path.clone();
                        self.mbox = None;
                        return Self::error(&path, err);
                    }
                }
            }
            let path = self.pending.pop_front()?;
            let metadata = match fs::metadata(&path) {
                Ok(metadata) => metadata,
                Err(err) => return Self::error(&path, err),
            };
            if metadata.is_dir() {
                if let Err(err) = self.expand_directory(&path) {
                    return Self::error(&path, err);
                }
                continue;
            }
            match is_mbox(&path) {
                Ok(true) => match MboxReader::open(&path) {
                    Ok(reader) => self.mbox = Some(reader),
                    Err(err) => return Self::error(&path, err),
                },
                Ok(false) => {
                    let absolute = std::path::absolute(&path).unwrap_or(path);
                    let envelope =
                        Envelope::new(Origin::File { path: absolute.clone() }, Payload::File(absolute.clone()));
                    return Some(
                        envelope
                            .loaded_if_smaller_than(self.read_up_to)
                            .map_err(|err| WalkError { path: absolute, source: io::Error::other(err) }),
                    );
                }
                Err(err) => return Self::error(&path, err),
            }
        }
    }
}

/// An mbox file starts with `From ` and has at least one more `From ` line after a blank
/// line; a single message with an envelope line is just a message.
fn is_mbox(path: &Path) -> io::Result<bool> {
    let mut head = [0u8; 5];
    let mut file = File::open(path)?;
    let n = file.read(&mut head)?;
    Ok(n == 5 && &head == b"From ")
}

/// Reads an mbox one message at a time.
#[derive(Debug)]
struct MboxReader {
    path: PathBuf,
    reader: BufReader<File>,
    /// The `From ` line of the next message has been read already.
    index: usize,
    line: Vec<u8>,
    done: bool,
}

impl MboxReader {
    fn open(path: &Path) -> io::Result<Self> {
        let mut reader = BufReader::with_capacity(256 * 1024, File::open(path)?);
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line)?; // the first `From ` line
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        Ok(MboxReader { path: absolute, reader, index: 0, line: Vec::new(), done: false })
    }

    fn next_message(&mut self, max_bytes: u64) -> io::Result<Option<(usize, Vec<u8>)>> {
        if self.done {
            return Ok(None);
        }
        let mut message = Vec::new();
        let mut oversized = false;
        loop {
            self.line.clear();
            if self.reader.read_until(b'\n', &mut self.line)? == 0 {
                self.done = true;
                break;
            }
            if self.line.starts_with(b"From ") {
                break;
            }
            // mboxrd quoting: `>From ` (and `>>From `) lose one `>`.
            let line = match self.line.iter().position(|&b| b != b'>') {
                Some(depth) if depth > 0 && self.line[depth..].starts_with(b"From ") => &self.line[1..],
                _ => &self.line[..],
            };
            if message.len() as u64 + line.len() as u64 > max_bytes {
                oversized = true;
            } else {
                message.extend_from_slice(line);
            }
        }
        self.index += 1;
        if oversized {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "message {} of the mbox is larger than limits.max_message_bytes ({max_bytes} bytes)",
                    self.index
                ),
            ));
        }
        // The blank line that separates messages belongs to the mbox, not the message.
        if message.ends_with(b"\n\n") {
            message.pop();
        } else if message.ends_with(b"\r\n\r\n") {
            message.truncate(message.len() - 2);
        }
        if message.is_empty() && self.done {
            return Ok(None);
        }
        Ok(Some((self.index, message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(walk: Walk) -> Vec<String> {
        walk.map(|item| match item {
            Ok(envelope) => envelope.origin.to_string(),
            Err(err) => format!("error: {err}"),
        })
        .collect()
    }

    #[test]
    fn globs_match_names() {
        assert!(glob_match("*.expected.json", "a.xml.expected.json"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("report-*.xml", "report-1.xml"));
        assert!(glob_match("a*b*c", "a-b-c"));
        assert!(!glob_match("*.json", "a.xml"));
        assert!(!glob_match("exact", "exactly"));
        assert!(glob_match("exact", "exact"));
    }

    #[test]
    fn directories_maildirs_and_mboxes() -> io::Result<()> {
        let root = tempfile::tempdir()?;
        let base = root.path();
        fs::create_dir_all(base.join("archive/sub"))?;
        fs::write(base.join("archive/b.xml"), "<feedback/>")?;
        fs::write(base.join("archive/sub/a.xml.gz"), [0x1f, 0x8b])?;
        fs::write(base.join("archive/.hidden.xml"), "")?;
        for sub in ["cur", "new", "tmp", ".Reports/cur", ".Reports/new", ".Reports/tmp"] {
            fs::create_dir_all(base.join("Maildir").join(sub))?;
        }
        fs::write(base.join("Maildir/new/1.host"), "Subject: one\n\nbody\n")?;
        fs::write(base.join("Maildir/cur/2.host:2,S"), "Subject: two\n\nbody\n")?;
        fs::write(base.join("Maildir/tmp/3.host"), "Subject: partial\n")?;
        fs::write(base.join("Maildir/dovecot-uidlist"), "3 V1 N4\n")?;
        fs::write(base.join("Maildir/.Reports/new/4.host"), "Subject: four\n\nbody\n")?;
        fs::write(
            base.join("reports.mbox"),
            "From a@example.com Mon Jan  1 00:00:00 2024\nSubject: 1\n\n>From quoted\n\nFrom b@example.com Mon Jan  1 00:00:01 2024\nSubject: 2\n\nbody\n",
        )?;

        let walk = Walk::new(
            [base.join("archive"), base.join("Maildir"), base.join("reports.mbox"), base.join("missing")],
            1 << 20,
        );
        let found = origins(walk);
        let rel: Vec<String> = found.iter().map(|o| o.replace(&base.display().to_string(), "")).collect();
        assert_eq!(
            rel,
            [
                "/archive/b.xml",
                "/archive/sub/a.xml.gz",
                "/Maildir/new/1.host",
                "/Maildir/cur/2.host:2,S",
                "/Maildir/.Reports/new/4.host",
                "/reports.mbox (message 1)",
                "/reports.mbox (message 2)",
                "error: /missing: No such file or directory (os error 2)",
            ]
        );

        let mut walk = Walk::new([base.join("reports.mbox")], 1 << 20);
        let first = walk.next().expect("a message").map_err(|e| e.source)?;
        assert_eq!(first.payload, Payload::Bytes(b"Subject: 1\n\nFrom quoted\n".to_vec()));
        Ok(())
    }
}
