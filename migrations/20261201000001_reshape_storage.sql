-- One storage rule, in the store's Rust code (store/src/outcome.rs and store/src/ledger.rs):
-- inputs, reports, records and rollup rows are written with plain statements over arrays of
-- the tables' own row types, the same on every route. What this makes obsolete goes:
--
-- * dmarcpipe_store_input and dmarcpipe_store_inputs (migrations 4 and 6), which held a second
--   copy of the outcome and duplicate rules;
-- * the rollup queue and dmarcpipe_refresh_rollups (migration 2): every report's rollup rows
--   are now summed by the store and written in the report's own transaction, so the rollups
--   are never behind the records. Reports still queued by an earlier version are rolled up
--   here first.
--
-- The comments of migration 2 about a trigger that queues reports (there is none since that
-- migration landed) and about the queue are superseded by this note; landed migrations are
-- never edited (see migrations/README.md).

DO $$
BEGIN
    WHILE dmarcpipe_refresh_rollups(10000) > 0 LOOP
    END LOOP;
END;
$$;

DROP FUNCTION dmarcpipe_refresh_rollups(integer);
DROP TABLE aggregate_rollup_queue;
DROP FUNCTION dmarcpipe_store_input;
DROP FUNCTION dmarcpipe_store_inputs;

-- DMARC passes when either aligned result passes; unknown (NULL) when neither was reported.
-- The one definition in SQL, for the views; the store's Rust code has the same rule
-- (Record::dmarc_result), and a test checks that the two agree.
CREATE FUNCTION dmarcpipe_dmarc_result(dkim_aligned text, spf_aligned text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN dkim_aligned = 'pass' OR spf_aligned = 'pass' THEN 'pass'
            WHEN dkim_aligned IS NULL AND spf_aligned IS NULL THEN NULL
            ELSE 'fail' END;

CREATE OR REPLACE VIEW dmarc_records AS
SELECT r.report, r.record_no, rep.org_name, rep.report_id, rep.policy_domain, rep.date_begin,
       rep.date_end, r.source_ip, r.message_count, r.disposition, r.dkim_aligned, r.spf_aligned,
       dmarcpipe_dmarc_result(r.dkim_aligned, r.spf_aligned) AS dmarc_result,
       r.header_from, r.envelope_from, r.envelope_to,
       coalesce(r.override_reasons, '{}') AS override_reasons,
       coalesce(r.override_comments, '{}') AS override_comments,
       r.dkim_count, r.spf_count, r.raw, r.extensions
FROM aggregate_records r
JOIN aggregate_reports rep ON rep.id = r.report AND rep.date_begin = r.date_begin;

CREATE OR REPLACE VIEW dmarc_daily AS
SELECT day, policy_domain, org_name, disposition, dkim_aligned, spf_aligned,
       dmarcpipe_dmarc_result(dkim_aligned, spf_aligned) AS dmarc_result,
       messages, records
FROM aggregate_rollup_daily;
