-- Compaction of the rollups (issue 13): the append-only rollup tables get one row per report
-- and key, so that over years they hold nearly as many rows as there are records, and summing
-- them takes seconds. Compaction (store/src/compact.rs, run by `report` and
-- periodically by `serve`) moves the rows appended since the last compaction into merged rows:
--
-- * aggregate_rollup_daily_compacted and aggregate_rollup_sources_compacted: one row per key
--   (day, domain, reporter and result; day, domain and source). They INHERIT from the
--   append-only tables, so every query of those tables (the views dmarc_daily and
--   dmarc_daily_sources, and anything else reading them) sees the compacted rows as well, and
--   a column added to an append-only table is added to its compacted child too; compaction
--   sums every column that is not part of the key.
-- * aggregate_rollup_source_totals: one row per policy domain and source over all days, with
--   the first and last day, for the rollups by source (and host, sender, country, ASN,
--   location) without --since/--until, which otherwise add up a row per source and day.
--
-- The rows the store appends stay in the parent tables (`ONLY aggregate_rollup_sources`) until
-- compaction takes them. Each compaction, in one transaction, deletes the rows it takes and
-- adds their sums to every level, so at any moment the fresh rows plus the compacted rows of a
-- level hold exactly the sums of the records. The totals level must therefore only ever be
-- written by compaction: a migration that rewrites the rollup tables empties it and the
-- compacted children too, and appends the rebuilt sums to the parents (compaction redoes the rest).

CREATE TABLE aggregate_rollup_daily_compacted () INHERITS (aggregate_rollup_daily);
CREATE UNIQUE INDEX aggregate_rollup_daily_compacted_key ON aggregate_rollup_daily_compacted
    (day, policy_domain, org_name, disposition, dkim_aligned, spf_aligned) NULLS NOT DISTINCT;

CREATE TABLE aggregate_rollup_sources_compacted () INHERITS (aggregate_rollup_sources);
CREATE UNIQUE INDEX aggregate_rollup_sources_compacted_key ON aggregate_rollup_sources_compacted
    (day, policy_domain, source_ip) NULLS NOT DISTINCT;

CREATE TABLE aggregate_rollup_source_totals (
    policy_domain          text   NOT NULL,
    source_ip              inet,
    first_day              date   NOT NULL,
    last_day               date   NOT NULL,
    messages               bigint NOT NULL,
    dmarc_pass             bigint NOT NULL,
    dmarc_fail             bigint NOT NULL,
    disposition_none       bigint NOT NULL,
    disposition_quarantine bigint NOT NULL,
    disposition_reject     bigint NOT NULL,
    dkim_aligned           bigint NOT NULL,
    spf_aligned            bigint NOT NULL,
    records                bigint NOT NULL
);
CREATE UNIQUE INDEX aggregate_rollup_source_totals_key ON aggregate_rollup_source_totals
    (policy_domain, source_ip) NULLS NOT DISTINCT;
