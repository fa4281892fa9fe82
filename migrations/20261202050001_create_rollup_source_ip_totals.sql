-- A third level of the source rollups (issue 13): one row per source over all days and every
-- policy domain, for the rollups by source, host, sender, country, ASN and location (and the
-- visual report) without --domain, --since or --until. Without it, those add up the source
-- totals of every domain (a row per domain and source) into a row per source first, which
-- takes most of their time.
--
-- Like the levels of migration 20261201150001, it is written only by compaction
-- (store/src/compact.rs), in the transaction that takes the appended rows: at any moment the
-- rows not yet compacted plus this level hold exactly the sums of the records. A migration
-- that rewrites the rollup tables empties it too, with the other levels.
--
-- It is filled here from the source totals, under the compaction lock so that no compaction
-- adds to the totals meanwhile. A source whose sums over every domain would not fit in 64 bits
-- (possible only with sums near 2^63) is not compacted: its rows per day go back to the
-- appended table, and out of the levels, as compaction does with such keys; the queries add
-- them up as exact numbers.

CREATE TABLE aggregate_rollup_source_ip_totals (
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
    records                bigint NOT NULL,
    forwarded_reason       bigint NOT NULL DEFAULT 0,
    dkim_unaligned         bigint NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX aggregate_rollup_source_ip_totals_key ON aggregate_rollup_source_ip_totals
    (source_ip) NULLS NOT DISTINCT;

SELECT pg_advisory_xact_lock(hashtext('dmarcpipe_compact_rollups'));

CREATE TEMPORARY TABLE overflowing_sources ON COMMIT DROP AS
SELECT source_ip FROM aggregate_rollup_source_totals
GROUP BY source_ip
HAVING greatest(sum(messages), sum(dmarc_pass), sum(dmarc_fail), sum(disposition_none),
                sum(disposition_quarantine), sum(disposition_reject), sum(dkim_aligned),
                sum(spf_aligned), sum(records), sum(forwarded_reason), sum(dkim_unaligned))
       > 9223372036854775807;

WITH moved AS (
    DELETE FROM aggregate_rollup_sources_compacted c USING overflowing_sources o
    WHERE c.source_ip IS NOT DISTINCT FROM o.source_ip
    RETURNING c.*
)
INSERT INTO aggregate_rollup_sources SELECT * FROM moved;
DELETE FROM aggregate_rollup_source_totals t USING overflowing_sources o
WHERE t.source_ip IS NOT DISTINCT FROM o.source_ip;

INSERT INTO aggregate_rollup_source_ip_totals
    (source_ip, first_day, last_day, messages, dmarc_pass, dmarc_fail, disposition_none,
     disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records,
     forwarded_reason, dkim_unaligned)
SELECT source_ip, min(first_day), max(last_day), sum(messages), sum(dmarc_pass), sum(dmarc_fail),
       sum(disposition_none), sum(disposition_quarantine), sum(disposition_reject),
       sum(dkim_aligned), sum(spf_aligned), sum(records), sum(forwarded_reason),
       sum(dkim_unaligned)
FROM aggregate_rollup_source_totals
GROUP BY source_ip;

-- The rows of the messages not passing DMARC per day, domain and source, with their sums, for
-- the traffic classes of each day in the visual report (store/src/report.rs): the rows where
-- every message passed are all compliant, which the daily rollup counts, and they are most
-- rows. An index of the others alone, read without the table (compaction vacuums the compacted
-- rows, so that their pages are known to be visible).
CREATE INDEX aggregate_rollup_sources_compacted_failing ON aggregate_rollup_sources_compacted (day, policy_domain)
    INCLUDE (source_ip, messages, dmarc_pass, dkim_aligned, spf_aligned, forwarded_reason, dkim_unaligned)
    WHERE messages > dmarc_pass;
