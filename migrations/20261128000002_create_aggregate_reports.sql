-- Aggregate (RUA) reports. One row per report; the natural key makes a second arrival of the
-- same report (another MX, another address, a re-send) a duplicate instead of a second copy.
CREATE TABLE aggregate_reports (
    id                      bigint GENERATED ALWAYS AS IDENTITY,
    input                   bigint      NOT NULL,
    org_name                text        NOT NULL,
    org_email               text,
    extra_contact_info      text,
    report_id               text        NOT NULL,
    policy_domain           text        NOT NULL,
    date_begin              timestamptz NOT NULL,
    date_end                timestamptz NOT NULL,
    errors                  text[]      NOT NULL DEFAULT '{}',
    generator               text,
    schema                  text        NOT NULL,
    namespace               text,
    xml_version             text,
    policy_p                text,
    policy_sp               text,
    policy_np               text,
    policy_pct              integer,
    policy_adkim            text,
    policy_aspf             text,
    policy_fo               text,
    policy_testing          text,
    policy_discovery_method text,
    extensions              text,
    record_count            bigint      NOT NULL DEFAULT 0,
    message_count           bigint      NOT NULL DEFAULT 0,
    warnings                jsonb       NOT NULL DEFAULT '[]',
    received_at             timestamptz NOT NULL,
    CONSTRAINT aggregate_reports_pkey PRIMARY KEY (id),
    CONSTRAINT aggregate_reports_natural_key UNIQUE (org_name, report_id, policy_domain, date_begin, date_end),
    CONSTRAINT aggregate_reports_date_range_check CHECK (date_end >= date_begin),
    CONSTRAINT aggregate_reports_schema_check CHECK (schema IN ('rfc7489', 'rfc9990')),
    CONSTRAINT aggregate_reports_policy_p_check CHECK (policy_p IN ('none', 'pass', 'quarantine', 'reject')),
    CONSTRAINT aggregate_reports_policy_sp_check CHECK (policy_sp IN ('none', 'pass', 'quarantine', 'reject')),
    CONSTRAINT aggregate_reports_policy_np_check CHECK (policy_np IN ('none', 'pass', 'quarantine', 'reject')),
    CONSTRAINT aggregate_reports_policy_pct_check CHECK (policy_pct BETWEEN 0 AND 100),
    CONSTRAINT aggregate_reports_policy_adkim_check CHECK (policy_adkim IN ('r', 's')),
    CONSTRAINT aggregate_reports_policy_aspf_check CHECK (policy_aspf IN ('r', 's')),
    CONSTRAINT aggregate_reports_policy_testing_check CHECK (policy_testing IN ('n', 'y')),
    CONSTRAINT aggregate_reports_policy_discovery_method_check CHECK (policy_discovery_method IN ('psl', 'treewalk'))
);

-- `input` has no foreign key: a report is written in its input's transaction, right after the
-- input row, by the only code that writes either; a key check per report cost a query.
CREATE INDEX aggregate_reports_input_idx ON aggregate_reports (input);
CREATE INDEX aggregate_reports_domain_begin_idx ON aggregate_reports (policy_domain, date_begin);

-- Reports whose records are not yet in the rollups, queued in the transaction that stores
-- them (by dmarcpipe_store_input, and by the COPY route of the store for reports it does not
-- roll up itself).
CREATE TABLE aggregate_rollup_queue (
    report bigint NOT NULL,
    CONSTRAINT aggregate_rollup_queue_pkey PRIMARY KEY (report)
);

-- One row per <record>, partitioned by month of the report's date_begin (partitions are
-- created on demand by dmarcpipe_ensure_record_partition).
--
-- Shaped for loading speed, since a single report can carry a million records: the first
-- DKIM and the first SPF result (all most records have) are plain columns, further results
-- go to `auth_more` (NULL for most records), and empty lists are NULL. Arrays and JSON cost
-- PostgreSQL several times more to parse than plain text, which halved COPY throughput in
-- the first design. The views dmarc_dkim_results and dmarc_spf_results give one row per
-- result whatever the storage. Records are located by report through a BRIN index: they are
-- written report by report, so it stays tiny and costs nothing to maintain, unlike a B-tree
-- primary key, which took a third of the loading time.
CREATE TABLE aggregate_records (
    report            bigint      NOT NULL,
    record_no         integer     NOT NULL,
    date_begin        timestamptz NOT NULL,
    source_ip         inet,
    message_count     bigint      NOT NULL,
    disposition       text,
    dkim_aligned      text,
    spf_aligned       text,
    override_reasons  text[],
    override_comments text[],
    header_from       text,
    envelope_from     text,
    envelope_to       text,
    dkim_count        smallint    NOT NULL,
    dkim_domain       text,
    dkim_selector     text,
    dkim_result       text,
    dkim_human_result text,
    spf_count         smallint    NOT NULL,
    spf_domain        text,
    spf_scope         text,
    spf_result        text,
    spf_human_result  text,
    -- {"dkim": [{"domain", "selector", "result", "human_result"}, ...], "spf": [...]}: the
    -- results after the first of each kind.
    auth_more         jsonb,
    raw               jsonb,
    extensions        text,
    CONSTRAINT aggregate_records_message_count_check CHECK (message_count >= 0),
    CONSTRAINT aggregate_records_disposition_check CHECK (disposition IN ('none', 'pass', 'quarantine', 'reject')),
    CONSTRAINT aggregate_records_dkim_aligned_check CHECK (dkim_aligned IN ('pass', 'fail')),
    CONSTRAINT aggregate_records_spf_aligned_check CHECK (spf_aligned IN ('pass', 'fail'))
) PARTITION BY RANGE (date_begin);

CREATE INDEX aggregate_records_report_idx ON aggregate_records USING brin (report)
    WITH (pages_per_range = 32, autosummarize = on);

-- Creates the partition of aggregate_records for the month starting at `month_start` if it
-- does not exist. CREATE + ATTACH (SHARE UPDATE EXCLUSIVE on the parent) rather than
-- CREATE ... PARTITION OF, so that loads running in other transactions are never blocked.
CREATE FUNCTION dmarcpipe_ensure_record_partition(month_start timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    lower_bound timestamptz := date_trunc('month', month_start AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    upper_bound timestamptz := (date_trunc('month', month_start AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC';
    partition_name text := 'aggregate_records_' || to_char(lower_bound AT TIME ZONE 'UTC', 'YYYY_MM');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('dmarcpipe_ensure_record_partition'));
    IF to_regclass(partition_name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I (LIKE aggregate_records INCLUDING ALL)', partition_name);
        EXECUTE format('ALTER TABLE aggregate_records ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       partition_name, lower_bound, upper_bound);
    END IF;
END;
$$;

-- The rollups `dmarcpipe report` and dashboards read. Both are append-only: a report's sums
-- are added as new rows, by the client for a report streamed in (it sums while it loads), or
-- by dmarcpipe_refresh_rollups for the small reports queued by the trigger above (a batch at
-- a time, after every import, before every report, and periodically by `serve`). No row is
-- ever updated, so concurrent loads never wait on each other; queries add the rows up.
-- Days are the UTC day a report's period begins.
--
-- Messages per day, policy domain, reporter and result: small whatever the traffic.
CREATE TABLE aggregate_rollup_daily (
    day           date   NOT NULL,
    policy_domain text   NOT NULL,
    org_name      text   NOT NULL,
    disposition   text,
    dkim_aligned  text,
    spf_aligned   text,
    messages      bigint NOT NULL,
    records       bigint NOT NULL
);

CREATE INDEX aggregate_rollup_daily_day_idx ON aggregate_rollup_daily (day, policy_domain);

-- Messages per day, policy domain and source address, with the result breakdown as columns.
CREATE TABLE aggregate_rollup_sources (
    day                    date   NOT NULL,
    policy_domain          text   NOT NULL,
    source_ip              inet,
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

CREATE INDEX aggregate_rollup_sources_day_idx ON aggregate_rollup_sources (day, policy_domain);

-- Adds the records of queued reports to both rollups, at most `batch` reports per call;
-- returns how many reports it took. Serialized by an advisory lock, so concurrent callers
-- never count a report twice.
CREATE FUNCTION dmarcpipe_refresh_rollups(batch integer) RETURNS integer
LANGUAGE plpgsql
-- A batch's records are aggregated in one go: in memory, by hashing. (Fresh partitions have
-- no statistics yet, and the planner would otherwise sort.)
SET work_mem = '128MB'
SET enable_sort = off
AS $$
DECLARE
    taken bigint[];
    taken_days timestamptz[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('dmarcpipe_refresh_rollups'));
    WITH queued AS (
        DELETE FROM aggregate_rollup_queue
        WHERE report IN (SELECT report FROM aggregate_rollup_queue ORDER BY report LIMIT batch)
        RETURNING report
    )
    SELECT coalesce(array_agg(report), '{}') INTO taken FROM queued;
    IF cardinality(taken) = 0 THEN
        RETURN 0;
    END IF;
    -- The start dates select the partitions to read; the report ids the pages (BRIN).
    SELECT coalesce(array_agg(DISTINCT date_begin), '{}') INTO taken_days
    FROM aggregate_reports WHERE id = ANY (taken);

    INSERT INTO aggregate_rollup_daily
        (day, policy_domain, org_name, disposition, dkim_aligned, spf_aligned, messages, records)
    SELECT (b.date_begin AT TIME ZONE 'UTC')::date, b.policy_domain, b.org_name,
           r.disposition, r.dkim_aligned, r.spf_aligned, sum(r.message_count), count(*)
    FROM aggregate_reports b
    JOIN aggregate_records r ON r.report = b.id AND r.date_begin = b.date_begin
    WHERE b.id = ANY (taken) AND r.report = ANY (taken) AND r.date_begin = ANY (taken_days)
    GROUP BY 1, 2, 3, 4, 5, 6;

    INSERT INTO aggregate_rollup_sources
        (day, policy_domain, source_ip, messages, dmarc_pass, dmarc_fail, disposition_none,
         disposition_quarantine, disposition_reject, dkim_aligned, spf_aligned, records)
    SELECT (b.date_begin AT TIME ZONE 'UTC')::date, b.policy_domain, r.source_ip,
           sum(r.message_count),
           coalesce(sum(r.message_count) FILTER (WHERE r.dkim_aligned = 'pass' OR r.spf_aligned = 'pass'), 0),
           coalesce(sum(r.message_count) FILTER (WHERE coalesce(r.dkim_aligned, '') <> 'pass'
                                                   AND coalesce(r.spf_aligned, '') <> 'pass'
                                                   AND (r.dkim_aligned IS NOT NULL OR r.spf_aligned IS NOT NULL)), 0),
           coalesce(sum(r.message_count) FILTER (WHERE r.disposition IN ('none', 'pass')), 0),
           coalesce(sum(r.message_count) FILTER (WHERE r.disposition = 'quarantine'), 0),
           coalesce(sum(r.message_count) FILTER (WHERE r.disposition = 'reject'), 0),
           coalesce(sum(r.message_count) FILTER (WHERE r.dkim_aligned = 'pass'), 0),
           coalesce(sum(r.message_count) FILTER (WHERE r.spf_aligned = 'pass'), 0),
           count(*)
    FROM aggregate_reports b
    JOIN aggregate_records r ON r.report = b.id AND r.date_begin = b.date_begin
    WHERE b.id = ANY (taken) AND r.report = ANY (taken) AND r.date_begin = ANY (taken_days)
    GROUP BY 1, 2, 3;

    RETURN cardinality(taken);
END;
$$;
