-- Every input dmarcpipe received (a file, a message from stdin, SMTP or IMAP), with its
-- provenance and exactly one outcome. Rejected inputs keep their bytes in input_payloads so
-- that `dmarcpipe reprocess` can run them again after a parser fix.
CREATE TABLE inputs (
    id                bigint GENERATED ALWAYS AS IDENTITY,
    channel           text        NOT NULL,
    origin            text        NOT NULL,
    sha256            bytea       NOT NULL,
    size              bigint      NOT NULL,
    received_at       timestamptz NOT NULL,
    processed_at      timestamptz NOT NULL DEFAULT now(),
    outcome           text        NOT NULL,
    stage             text,
    error             text,
    warnings          jsonb       NOT NULL DEFAULT '[]',
    duplicate_of      bigint,
    reports_stored    integer     NOT NULL DEFAULT 0,
    reports_duplicate integer     NOT NULL DEFAULT 0,
    records           bigint      NOT NULL DEFAULT 0,
    messages          bigint      NOT NULL DEFAULT 0,
    attempts          integer     NOT NULL DEFAULT 1,
    CONSTRAINT inputs_pkey PRIMARY KEY (id),
    CONSTRAINT inputs_channel_check CHECK (channel IN ('file', 'stdin', 'smtp', 'lmtp', 'imap')),
    CONSTRAINT inputs_sha256_check CHECK (length(sha256) = 32),
    CONSTRAINT inputs_outcome_check CHECK (outcome IN ('stored', 'duplicate', 'not_report', 'rejected')),
    CONSTRAINT inputs_stage_check CHECK (stage IN ('unpack', 'parse', 'store')),
    CONSTRAINT inputs_duplicate_of_fkey FOREIGN KEY (duplicate_of) REFERENCES inputs (id)
);

-- (sha256, id): the earliest input with given bytes is one index probe away.
CREATE INDEX inputs_sha256_idx ON inputs (sha256, id);
CREATE INDEX inputs_received_at_idx ON inputs (received_at);
CREATE INDEX inputs_rejected_idx ON inputs (id) WHERE outcome = 'rejected';

CREATE TABLE input_payloads (
    input   bigint  NOT NULL,
    sealed  boolean NOT NULL,
    payload bytea   NOT NULL,
    CONSTRAINT input_payloads_pkey PRIMARY KEY (input),
    CONSTRAINT input_payloads_input_fkey FOREIGN KEY (input) REFERENCES inputs (id) ON DELETE CASCADE
);
