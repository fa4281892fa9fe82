-- What is known about each distinct source address of the aggregate records: one row per
-- address, however many records name it. A row is created (the address alone) when the first
-- record from that address is stored; the enrichers (`dmarcpipe enrich`, `serve` in the
-- background, `import` and `fetch` at their end) fill in the rest, never on the ingest path.
--
-- Each part (reverse DNS, geolocation, network, known sender) says when it was looked up and
-- from which data source, so that a part can be refreshed on its own. Enrichers on several
-- hosts share the work: they take due rows (`enrich_due <= now()`) with FOR UPDATE SKIP LOCKED
-- and push `enrich_due` forward, so no address is looked up twice at once.
CREATE TABLE source_ips (
    ip               inet PRIMARY KEY,
    first_seen       timestamptz NOT NULL DEFAULT now(),

    -- Reverse DNS: every PTR name (without the final dot), the name shown (the first
    -- forward-confirmed one, else the first), whether it resolves back to the address, and its
    -- registrable domain (public suffix list).
    ptr_names        text[],
    ptr_name         text,
    ptr_confirmed    boolean,
    ptr_base_domain  text,
    -- found | nxdomain | no_answer | timeout | error
    ptr_status       text,
    ptr_looked_up    timestamptz,
    -- When the answer (positive or negative) goes stale, from its TTL.
    ptr_expires      timestamptz,
    -- Lookups in a row that timed out or failed, for backing off.
    ptr_failures     integer NOT NULL DEFAULT 0,

    -- Geolocation: ISO 3166-1 alpha-2 code and English name, region, city, coordinates.
    country_code     text,
    country_name     text,
    region           text,
    city             text,
    latitude         double precision,
    longitude        double precision,
    -- The database and its build, e.g. 'GeoLite2-City 2026-11-28'.
    geo_source       text,
    geo_looked_up    timestamptz,

    -- Network: autonomous system number and organisation.
    asn              bigint,
    as_org           text,
    asn_source       text,
    asn_looked_up    timestamptz,

    -- The known sending service: name, kind (mailbox_provider, esp, marketing, crm,
    -- security_gateway, forwarder, hosting, other) and the rule that matched, with its file.
    sender_name      text,
    sender_kind      text,
    sender_evidence  text,
    sender_looked_up timestamptz,

    -- When an enricher should next look at this address; new addresses are due at once.
    enrich_due       timestamptz NOT NULL DEFAULT '-infinity'
);

CREATE INDEX source_ips_enrich_due_idx ON source_ips (enrich_due);
