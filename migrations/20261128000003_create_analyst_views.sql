-- The analyst surface: stable views documented in the README. Internal tables may change;
-- these views change only with a migration note.

CREATE VIEW dmarc_inputs AS
SELECT i.id, i.channel, i.origin, encode(i.sha256, 'hex') AS sha256, i.size, i.received_at,
       i.processed_at, i.outcome, i.stage, i.error, i.warnings, i.duplicate_of,
       i.reports_stored, i.reports_duplicate, i.records, i.messages, i.attempts,
       EXISTS (SELECT 1 FROM input_payloads p WHERE p.input = i.id) AS payload_kept
FROM inputs i;

CREATE VIEW dmarc_reports AS
SELECT id, input, org_name, org_email, extra_contact_info, report_id, policy_domain,
       date_begin, date_end, policy_p, policy_sp, policy_np, policy_pct, policy_adkim,
       policy_aspf, policy_fo, policy_testing, policy_discovery_method, schema, generator,
       namespace, xml_version, errors, extensions, record_count, message_count, warnings,
       received_at
FROM aggregate_reports;

CREATE VIEW dmarc_records AS
SELECT r.report, r.record_no, rep.org_name, rep.report_id, rep.policy_domain, rep.date_begin,
       rep.date_end, r.source_ip, r.message_count, r.disposition, r.dkim_aligned, r.spf_aligned,
       CASE WHEN r.dkim_aligned = 'pass' OR r.spf_aligned = 'pass' THEN 'pass'
            WHEN r.dkim_aligned IS NULL AND r.spf_aligned IS NULL THEN NULL
            ELSE 'fail' END AS dmarc_result,
       r.header_from, r.envelope_from, r.envelope_to,
       coalesce(r.override_reasons, '{}') AS override_reasons,
       coalesce(r.override_comments, '{}') AS override_comments,
       r.dkim_count, r.spf_count, r.raw, r.extensions
FROM aggregate_records r
JOIN aggregate_reports rep ON rep.id = r.report AND rep.date_begin = r.date_begin;

CREATE VIEW dmarc_dkim_results AS
SELECT r.report, r.record_no, 1 AS position, r.date_begin, r.source_ip, r.header_from,
       r.dkim_domain AS domain, r.dkim_selector AS selector, r.dkim_result AS result,
       r.raw ->> 'dkim[0].result' AS result_raw, r.dkim_human_result AS human_result
FROM aggregate_records r
WHERE r.dkim_count > 0
UNION ALL
SELECT r.report, r.record_no, (d.position + 1)::integer, r.date_begin, r.source_ip, r.header_from,
       d.item ->> 'domain', d.item ->> 'selector', d.item ->> 'result',
       r.raw ->> format('dkim[%s].result', d.position), d.item ->> 'human_result'
FROM aggregate_records r
CROSS JOIN LATERAL jsonb_array_elements(r.auth_more -> 'dkim') WITH ORDINALITY AS d (item, position)
WHERE r.auth_more ? 'dkim';

CREATE VIEW dmarc_spf_results AS
SELECT r.report, r.record_no, 1 AS position, r.date_begin, r.source_ip, r.header_from,
       r.spf_domain AS domain, r.spf_scope AS scope, r.spf_result AS result,
       r.raw ->> 'spf[0].result' AS result_raw, r.spf_human_result AS human_result
FROM aggregate_records r
WHERE r.spf_count > 0
UNION ALL
SELECT r.report, r.record_no, (s.position + 1)::integer, r.date_begin, r.source_ip, r.header_from,
       s.item ->> 'domain', s.item ->> 'scope', s.item ->> 'result',
       r.raw ->> format('spf[%s].result', s.position), s.item ->> 'human_result'
FROM aggregate_records r
CROSS JOIN LATERAL jsonb_array_elements(r.auth_more -> 'spf') WITH ORDINALITY AS s (item, position)
WHERE r.auth_more ? 'spf';

CREATE VIEW dmarc_daily AS
SELECT day, policy_domain, org_name, disposition, dkim_aligned, spf_aligned,
       CASE WHEN dkim_aligned = 'pass' OR spf_aligned = 'pass' THEN 'pass'
            WHEN dkim_aligned IS NULL AND spf_aligned IS NULL THEN NULL
            ELSE 'fail' END AS dmarc_result,
       messages, records
FROM aggregate_rollup_daily;

CREATE VIEW dmarc_daily_sources AS
SELECT day, policy_domain, source_ip, messages, dmarc_pass, dmarc_fail, disposition_none,
       disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records
FROM aggregate_rollup_sources;
