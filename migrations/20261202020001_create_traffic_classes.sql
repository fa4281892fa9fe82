-- Traffic classes (issue 14): each record's messages fall in exactly one class, the first
-- rule that matches (documented in the README, "Traffic classes"):
--
-- 1. compliant      DMARC pass (aligned DKIM or aligned SPF);
-- 2. forwarded      not passing, and an override reason `forwarded`, `mailing_list` or
--                   `trusted_forwarder` (or `local_policy` with a comment saying `arc=pass`, as
--                   Google writes ARC overrides), or a DKIM signature that passes without being
--                   aligned, or a source that enrichment knows as a forwarder or mailbox
--                   provider (`source_ips.sender_kind`);
-- 3. misconfigured  not passing, from a known sending service (`source_ips.sender_name`) or from
--                   a source that has DMARC-pass records for the same policy domain (at any time:
--                   a service the owner uses but has not aligned everywhere);
-- 4. unknown        the rest: neither known nor ever compliant (possible spoofing).
--
-- The facts of rules 2 that live in a record (the override reason, the unaligned DKIM pass)
-- are summed per day, policy domain and source with the other rollup sums, as two new columns
-- of aggregate_rollup_sources (and so of its compacted child) and of the source totals, so
-- that `report --by class` and the HTML report classify from the rollups; the facts about a
-- source (known sender, ever compliant) are joined when the query runs, so enrichment done
-- later changes the class.
--
--   forwarded_reason  messages not passing DMARC with a forwarding override reason;
--   dkim_unaligned    messages not passing DMARC, without such a reason, with a DKIM pass.
--
-- The source rollups written before this migration lack the two sums: they are rebuilt from
-- the records (the compacted levels are emptied and the rebuilt sums appended to the parent,
-- as migration 20261201150001 prescribes; the next compaction merges them again).

ALTER TABLE aggregate_rollup_sources
    ADD COLUMN forwarded_reason bigint NOT NULL DEFAULT 0,
    ADD COLUMN dkim_unaligned   bigint NOT NULL DEFAULT 0;
ALTER TABLE aggregate_rollup_source_totals
    ADD COLUMN forwarded_reason bigint NOT NULL DEFAULT 0,
    ADD COLUMN dkim_unaligned   bigint NOT NULL DEFAULT 0;

-- Whether a record's override reasons say it was forwarded. The one definition in SQL; the
-- store's Rust code (store/src/rollup.rs, `is_forwarding_override`) has the same rule and a
-- test checks that they agree.
CREATE FUNCTION dmarcpipe_forwarding_override(reasons text[], comments text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN EXISTS (
    SELECT 1 FROM unnest(coalesce(reasons, '{}'), coalesce(comments, '{}')) AS o (reason, comment)
    WHERE o.reason IN ('forwarded', 'mailing_list', 'trusted_forwarder')
       OR (o.reason = 'local_policy' AND lower(o.comment) LIKE '%arc=pass%')
);

-- Whether any DKIM result of a record passes (the first is a column, the others JSON).
CREATE FUNCTION dmarcpipe_any_dkim_pass(first_result text, auth_more jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN coalesce(first_result = 'pass', false) OR coalesce(auth_more -> 'dkim' @> '[{"result": "pass"}]', false);

-- The class of messages from their facts: the DMARC result, the two record facts, and what is
-- known of the source (sender name and kind, and whether it ever passed for the domain).
CREATE FUNCTION dmarcpipe_traffic_class(dmarc_result text, forwarded_reason boolean,
                                        dkim_unaligned boolean, sender_name text,
                                        sender_kind text, ever_compliant boolean) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN dmarc_result = 'pass' THEN 'compliant'
            WHEN forwarded_reason OR dkim_unaligned
                 OR sender_kind IN ('forwarder', 'mailbox_provider') THEN 'forwarded'
            WHEN sender_name IS NOT NULL OR ever_compliant THEN 'misconfigured'
            ELSE 'unknown' END;

-- The policy domains and sources that ever had DMARC-pass messages (all days). Records without
-- a source address are never counted as from a compliant source.
CREATE VIEW dmarc_compliant_sources AS
SELECT policy_domain, source_ip
FROM (
    SELECT policy_domain, source_ip, dmarc_pass FROM aggregate_rollup_source_totals
    UNION ALL
    SELECT policy_domain, source_ip, dmarc_pass FROM ONLY aggregate_rollup_sources
) u
WHERE source_ip IS NOT NULL
GROUP BY policy_domain, source_ip
HAVING sum(dmarc_pass) > 0;

-- Every record with what is known of its source and its traffic class.
CREATE VIEW dmarc_records_classified AS
SELECT r.*,
       dmarcpipe_traffic_class(
           r.dmarc_result,
           dmarcpipe_forwarding_override(r.override_reasons, r.override_comments),
           dmarcpipe_any_dkim_pass(a.dkim_result, a.auth_more),
           r.sender, r.sender_kind,
           EXISTS (SELECT 1 FROM dmarc_compliant_sources c
                   WHERE c.policy_domain = r.policy_domain
                     AND c.source_ip = r.source_ip)) AS class
FROM dmarc_records_sources r
JOIN aggregate_records a ON a.report = r.report AND a.record_no = r.record_no
                        AND a.date_begin = r.date_begin;

-- Rebuild the source rollups with the two new sums (see above).
TRUNCATE aggregate_rollup_source_totals;
TRUNCATE aggregate_rollup_sources;
INSERT INTO aggregate_rollup_sources
    (day, policy_domain, source_ip, messages, dmarc_pass, dmarc_fail, disposition_none,
     disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records,
     forwarded_reason, dkim_unaligned)
SELECT (rep.date_begin AT TIME ZONE 'UTC')::date, rep.policy_domain, r.source_ip,
       sum(r.message_count),
       coalesce(sum(r.message_count) FILTER (WHERE d.result = 'pass'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE d.result = 'fail'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.disposition IN ('none', 'pass')), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.disposition = 'quarantine'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.disposition = 'reject'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.dkim_aligned = 'pass'), 0),
       coalesce(sum(r.message_count) FILTER (WHERE r.spf_aligned = 'pass'), 0),
       count(*),
       coalesce(sum(r.message_count) FILTER (
           WHERE d.result IS DISTINCT FROM 'pass'
             AND dmarcpipe_forwarding_override(r.override_reasons, r.override_comments)), 0),
       coalesce(sum(r.message_count) FILTER (
           WHERE d.result IS DISTINCT FROM 'pass'
             AND NOT dmarcpipe_forwarding_override(r.override_reasons, r.override_comments)
             AND dmarcpipe_any_dkim_pass(r.dkim_result, r.auth_more)), 0)
FROM aggregate_records r
JOIN aggregate_reports rep ON rep.id = r.report AND rep.date_begin = r.date_begin
CROSS JOIN LATERAL (SELECT dmarcpipe_dmarc_result(r.dkim_aligned, r.spf_aligned) AS result) d
GROUP BY 1, 2, 3;
