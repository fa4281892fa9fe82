-- Analyst views of what enrichment found about the sources (issue 13), documented in the
-- README (SQL for analysts). Sources not yet enriched, or of which nothing was found, have NULL
-- in these columns.

-- Every record with what is known of its source address.
CREATE VIEW dmarc_records_sources AS
SELECT r.*, s.ptr_name AS host, s.ptr_base_domain AS host_domain, s.ptr_confirmed AS host_confirmed,
       s.sender_name AS sender, s.sender_kind, s.country_code, s.country_name, s.region, s.city,
       s.latitude, s.longitude, s.asn, s.as_org
FROM dmarc_records r
LEFT JOIN source_ips s ON s.ip = r.source_ip;

-- One row per source address over all days and domains: what is known of it, the policy
-- domains it sent for, its message counts and the first and last day (UTC day of the report
-- period's start) it was reported. From the source totals and the rows not yet compacted.
CREATE VIEW dmarc_sources AS
SELECT t.source_ip, s.ptr_name AS host, s.ptr_base_domain AS host_domain,
       s.ptr_confirmed AS host_confirmed, s.sender_name AS sender, s.sender_kind,
       s.country_code, s.country_name, s.region, s.city, s.latitude, s.longitude, s.asn, s.as_org,
       t.policy_domains, t.messages, t.dmarc_pass, t.dmarc_fail, t.disposition_none,
       t.disposition_quarantine, t.disposition_reject, t.dkim_aligned, t.spf_aligned, t.records,
       t.first_seen, t.last_seen
FROM (
    SELECT source_ip, array_agg(DISTINCT policy_domain ORDER BY policy_domain) AS policy_domains,
           sum(messages) AS messages, sum(dmarc_pass) AS dmarc_pass, sum(dmarc_fail) AS dmarc_fail,
           sum(disposition_none) AS disposition_none,
           sum(disposition_quarantine) AS disposition_quarantine,
           sum(disposition_reject) AS disposition_reject, sum(dkim_aligned) AS dkim_aligned,
           sum(spf_aligned) AS spf_aligned, sum(records) AS records,
           min(first_day) AS first_seen, max(last_day) AS last_seen
    FROM (
        SELECT policy_domain, source_ip, first_day, last_day, messages, dmarc_pass, dmarc_fail,
               disposition_none, disposition_quarantine, disposition_reject, dkim_aligned,
               spf_aligned, records
        FROM aggregate_rollup_source_totals
        UNION ALL
        SELECT policy_domain, source_ip, day, day, messages, dmarc_pass, dmarc_fail,
               disposition_none, disposition_quarantine, disposition_reject, dkim_aligned,
               spf_aligned, records
        FROM ONLY aggregate_rollup_sources
    ) u
    GROUP BY source_ip
) t
LEFT JOIN source_ips s ON s.ip = t.source_ip;
