-- SMTP TLS reports (RFC 8460): one row per report, per policy of a report, per failure
-- detail of a policy. The natural key (organization, report id, date range) makes a second
-- arrival of the same report a duplicate. Raw values that the parser normalized, and members
-- it does not know, are kept in `raw` (member path -> original text) beside each row.

CREATE TABLE tls_reports (
    id                   bigint GENERATED ALWAYS AS IDENTITY,
    input                bigint      NOT NULL,
    organization_name    text        NOT NULL,
    report_id            text        NOT NULL,
    date_begin           timestamptz NOT NULL,
    date_end             timestamptz NOT NULL,
    contact_info         text,
    policy_count         integer     NOT NULL,
    failure_detail_count integer     NOT NULL,
    -- Sums over the policies' summaries.
    successful_sessions  bigint      NOT NULL,
    failed_sessions      bigint      NOT NULL,
    raw                  jsonb,
    warnings             jsonb       NOT NULL DEFAULT '[]',
    received_at          timestamptz NOT NULL,
    CONSTRAINT tls_reports_pkey PRIMARY KEY (id),
    CONSTRAINT tls_reports_natural_key UNIQUE (organization_name, report_id, date_begin, date_end),
    CONSTRAINT tls_reports_date_range_check CHECK (date_end >= date_begin),
    CONSTRAINT tls_reports_counts_check CHECK (successful_sessions >= 0 AND failed_sessions >= 0)
);

-- `input` has no foreign key, as for aggregate_reports: the report is written in its input's
-- transaction, with the input row, by the only code that writes either (store/src/ledger.rs).
CREATE INDEX tls_reports_input_idx ON tls_reports (input);
CREATE INDEX tls_reports_date_begin_idx ON tls_reports (date_begin);

CREATE TABLE tls_policies (
    report               bigint  NOT NULL,
    -- 1-based position in the report's `policies`.
    policy_no            integer NOT NULL,
    -- sts, tlsa, no-policy-found, or what the reporter sent (kept, warned).
    policy_type          text,
    policy_strings       text[]  NOT NULL DEFAULT '{}',
    policy_domain        text,
    mx_hosts             text[]  NOT NULL DEFAULT '{}',
    successful_sessions  bigint  NOT NULL,
    failed_sessions      bigint  NOT NULL,
    failure_detail_count integer NOT NULL,
    raw                  jsonb,
    CONSTRAINT tls_policies_pkey PRIMARY KEY (report, policy_no),
    CONSTRAINT tls_policies_report_fkey FOREIGN KEY (report) REFERENCES tls_reports (id) ON DELETE CASCADE,
    CONSTRAINT tls_policies_counts_check CHECK (successful_sessions >= 0 AND failed_sessions >= 0)
);

CREATE INDEX tls_policies_domain_idx ON tls_policies (policy_domain);

CREATE TABLE tls_failures (
    report                 bigint  NOT NULL,
    policy_no              integer NOT NULL,
    -- 1-based position in the policy's `failure-details`.
    failure_no             integer NOT NULL,
    -- A registered result type, or what the reporter sent (the registry is open).
    result_type            text    NOT NULL,
    sending_mta_ip         inet,
    receiving_mx_hostname  text,
    receiving_mx_helo      text,
    receiving_ip           inet,
    failed_sessions        bigint  NOT NULL,
    additional_information text,
    failure_reason_code    text,
    raw                    jsonb,
    CONSTRAINT tls_failures_pkey PRIMARY KEY (report, policy_no, failure_no),
    CONSTRAINT tls_failures_policy_fkey FOREIGN KEY (report, policy_no)
        REFERENCES tls_policies (report, policy_no) ON DELETE CASCADE,
    CONSTRAINT tls_failures_failed_sessions_check CHECK (failed_sessions >= 0)
);

CREATE INDEX tls_failures_result_type_idx ON tls_failures (result_type);
CREATE INDEX tls_failures_receiving_mx_hostname_idx ON tls_failures (receiving_mx_hostname);

-- The analyst surface, beside the dmarc_* views of migration 3 (same stability promise).

CREATE VIEW dmarc_tls_reports AS
SELECT id, input, organization_name, report_id, date_begin, date_end, contact_info, policy_count,
       failure_detail_count, successful_sessions, failed_sessions,
       round(failed_sessions / nullif(successful_sessions::numeric + failed_sessions, 0), 4)::float8
           AS failure_share,
       raw, warnings, received_at
FROM tls_reports;

CREATE VIEW dmarc_tls_policies AS
SELECT p.report, p.policy_no, r.organization_name, r.report_id, r.date_begin, r.date_end,
       p.policy_type, p.policy_domain, p.policy_strings, p.mx_hosts, p.successful_sessions,
       p.failed_sessions,
       round(p.failed_sessions / nullif(p.successful_sessions::numeric + p.failed_sessions, 0), 4)::float8
           AS failure_share,
       p.failure_detail_count, p.raw
FROM tls_policies p
JOIN tls_reports r ON r.id = p.report;

CREATE VIEW dmarc_tls_failures AS
SELECT f.report, f.policy_no, f.failure_no, r.organization_name, r.report_id, r.date_begin, r.date_end,
       p.policy_type, p.policy_domain, f.result_type, f.sending_mta_ip, f.receiving_mx_hostname,
       f.receiving_mx_helo, f.receiving_ip, f.failed_sessions, f.additional_information,
       f.failure_reason_code, f.raw
FROM tls_failures f
JOIN tls_policies p ON p.report = f.report AND p.policy_no = f.policy_no
JOIN tls_reports r ON r.id = f.report;
