-- A weekly level of the source rollups (issue 13): one row per week and source over every
-- policy domain, for the rollups by source, host, sender, country, ASN and location (and the
-- visual report) over a period without --domain. Without it, a month's rollup adds up a row
-- per day, domain and source (about 376,000 rows for 77,000 sources in the benchmark's data),
-- which takes most of its time; with it, the whole weeks of the period come a row per week and
-- source, and only the days at either end from the daily level (store/src/rollup.rs,
-- per_source).
--
-- `week` is the Monday of the ISO week of the rows' days, date_trunc('week', day::timestamp)
-- (a timestamp without time zone, so that the session's time zone plays no part). Like the
-- levels of migrations 20261201150001 and 20261202050001, it is written only by compaction
-- (store/src/compact.rs), in the transaction that takes the appended rows: at any moment the
-- rows not yet compacted plus this level hold exactly the sums of the records. A migration
-- that rewrites the rollup tables empties it too, with the other levels.
--
-- It is filled here from the compacted rows per day, under the compaction lock so that no
-- compaction adds to them meanwhile. No sum can pass 64 bits: a week's sums of a source are at
-- most its sums over all days and domains, which aggregate_rollup_source_ip_totals holds as
-- bigint (a source whose sums do not fit there stays appended, out of every level).

CREATE TABLE aggregate_rollup_source_weeks (
    week                   date   NOT NULL,
    source_ip              inet,
    messages               bigint NOT NULL,
    dmarc_pass             bigint NOT NULL,
    dmarc_fail             bigint NOT NULL,
    disposition_none       bigint NOT NULL,
    disposition_quarantine bigint NOT NULL,
    disposition_reject     bigint NOT NULL,
    dkim_aligned           bigint NOT NULL,
    spf_aligned            bigint NOT NULL,
    records                bigint NOT NULL,
    forwarded_reason       bigint NOT NULL,
    dkim_unaligned         bigint NOT NULL,
    CONSTRAINT aggregate_rollup_source_weeks_monday CHECK (week = date_trunc('week', week::timestamp)::date)
);
CREATE UNIQUE INDEX aggregate_rollup_source_weeks_key ON aggregate_rollup_source_weeks
    (week, source_ip) NULLS NOT DISTINCT;

SELECT pg_advisory_xact_lock(hashtext('dmarcpipe_compact_rollups'));

INSERT INTO aggregate_rollup_source_weeks
    (week, source_ip, messages, dmarc_pass, dmarc_fail, disposition_none, disposition_quarantine,
     disposition_reject, dkim_aligned, spf_aligned, records, forwarded_reason, dkim_unaligned)
SELECT date_trunc('week', day::timestamp)::date, source_ip, sum(messages), sum(dmarc_pass), sum(dmarc_fail),
       sum(disposition_none), sum(disposition_quarantine), sum(disposition_reject),
       sum(dkim_aligned), sum(spf_aligned), sum(records), sum(forwarded_reason),
       sum(dkim_unaligned)
FROM aggregate_rollup_sources_compacted
GROUP BY 1, 2
ORDER BY 1, 2;

ANALYZE aggregate_rollup_source_weeks;
