//! The channels inputs arrive by. [`files`] walks paths given to `import` (files, directories,
//! mbox files, maildirs) into envelopes; [`smtp`] is the SMTP/LMTP server of `serve`, which
//! hands every message to a [`smtp::Deliver`] and acknowledges it only when that says so;
//! [`imap`] reads a mailbox and moves each message only after a [`imap::Deliver`] committed it.

pub mod files;
pub mod imap;
pub mod smtp;
