//! Enrichment of source IPs: what is known about who sends from an address, and from where.

pub mod countries;
pub mod dns;
pub mod enricher;
pub mod geo;
pub mod senders;
