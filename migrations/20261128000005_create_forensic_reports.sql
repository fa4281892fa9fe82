-- Failure (forensic, RUF) reports. Only what analysts need to investigate is stored in clear;
-- the report mail itself (the original message or its headers, its subject and recipients,
-- the human-readable part) exists only sealed with age in forensic_samples, and only when
-- recipients are configured.

ALTER TABLE inputs ADD COLUMN forensic_reports integer NOT NULL DEFAULT 0;

CREATE TABLE forensic_reports (
    id                  bigint GENERATED ALWAYS AS IDENTITY,
    input               bigint      NOT NULL,
    -- sha256 of the report mail's body: the same report arriving again by another path
    -- (other Received or Delivered-To headers) is a duplicate.
    fingerprint         bytea       NOT NULL,
    received_at         timestamptz NOT NULL,
    format              text        NOT NULL,
    feedback_type       text        NOT NULL,
    version             text,
    user_agent          text,
    incidents           bigint      NOT NULL DEFAULT 1,
    arrival_date        timestamptz,
    source_ip           inet,
    source_port         integer,
    reporting_mta       text,
    reported_domains    text[]      NOT NULL DEFAULT '{}',
    auth_failure        text,
    delivery_result     text,
    delivery_result_raw text,
    dkim_domain         text,
    dkim_selector       text,
    identity_alignment  text,
    original_mail_from  text,
    original_part       text,
    warnings            jsonb       NOT NULL DEFAULT '[]',
    -- sha256 and size of the sealed sample (NULL when no recipient was configured).
    sealed_sha256       bytea,
    sealed_size         integer,
    CONSTRAINT forensic_reports_pkey PRIMARY KEY (id),
    CONSTRAINT forensic_reports_fingerprint_key UNIQUE (fingerprint),
    CONSTRAINT forensic_reports_format_check CHECK (format IN ('arf', 'plain_text')),
    CONSTRAINT forensic_reports_original_part_check CHECK (original_part IN ('message', 'headers', 'in_text')),
    CONSTRAINT forensic_reports_fingerprint_check CHECK (length(fingerprint) = 32)
);

CREATE INDEX forensic_reports_arrival_date_idx ON forensic_reports (arrival_date);
CREATE INDEX forensic_reports_input_idx ON forensic_reports (input);
CREATE INDEX forensic_reports_reported_domains_idx ON forensic_reports USING gin (reported_domains);

-- The sealed report mail: binary age format, readable only with an identity matching one of
-- the recipients it was sealed to (`dmarcpipe forensic show ID -i key.txt`, or `age -d`).
CREATE TABLE forensic_samples (
    report bigint NOT NULL,
    sealed bytea  NOT NULL,
    CONSTRAINT forensic_samples_pkey PRIMARY KEY (report),
    CONSTRAINT forensic_samples_report_fkey FOREIGN KEY (report) REFERENCES forensic_reports (id) ON DELETE CASCADE
);

CREATE VIEW dmarc_forensic AS
SELECT f.id, f.input, f.received_at, f.arrival_date, f.source_ip, f.source_port, f.reporting_mta,
       f.reported_domains[1] AS reported_domain, f.reported_domains, f.feedback_type,
       f.auth_failure, f.delivery_result, f.delivery_result_raw, f.dkim_domain, f.dkim_selector,
       f.identity_alignment, f.original_mail_from, f.incidents, f.user_agent, f.version,
       f.format, f.original_part, f.warnings, encode(f.sealed_sha256, 'hex') AS sealed_sha256,
       f.sealed_size, EXISTS (SELECT 1 FROM forensic_samples s WHERE s.report = f.id) AS sample_kept
FROM forensic_reports f;

CREATE OR REPLACE VIEW dmarc_inputs AS
SELECT i.id, i.channel, i.origin, encode(i.sha256, 'hex') AS sha256, i.size, i.received_at,
       i.processed_at, i.outcome, i.stage, i.error, i.warnings, i.duplicate_of,
       i.reports_stored, i.reports_duplicate, i.records, i.messages, i.attempts,
       EXISTS (SELECT 1 FROM input_payloads p WHERE p.input = i.id) AS payload_kept,
       i.forensic_reports,
       (SELECT p.sealed FROM input_payloads p WHERE p.input = i.id) AS payload_sealed
FROM inputs i;
