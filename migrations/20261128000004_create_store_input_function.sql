-- Stores a new small input and its complete reports in one statement (one round trip, one
-- implicit transaction): the route of almost every input. Large inputs take the
-- transactional route with COPY instead (see store/src/pipeline.rs).
--
-- The arguments are columns: the input row as the client computed it assuming every report is
-- new (in_*), one array element per report (rep_*), one array element per record of all the
-- reports (rec_*, with rec_report the 1-based position of its report). Arrays travel in
-- PostgreSQL's binary format, which costs a fraction of parsing JSON or text.
--
-- An input whose bytes (SHA-256) arrived before and were not rejected is recorded as a
-- duplicate of that input and nothing else is stored. Reports already stored (natural key) are
-- skipped, and the input's outcome and counters corrected, in the same transaction.
CREATE FUNCTION dmarcpipe_store_input(
    in_channel text, in_origin text, in_sha256 bytea, in_size bigint, in_received_at timestamptz,
    in_outcome text, in_stage text, in_error text, in_warnings jsonb, in_reports_stored integer,
    in_reports_duplicate integer, in_records bigint, in_messages bigint,
    in_payload bytea, in_payload_sealed boolean,
    rep_org_name text[], rep_org_email text[], rep_extra_contact_info text[], rep_report_id text[],
    rep_policy_domain text[], rep_date_begin timestamptz[], rep_date_end timestamptz[], rep_errors jsonb[],
    rep_generator text[], rep_schema text[], rep_namespace text[], rep_xml_version text[],
    rep_policy_p text[], rep_policy_sp text[], rep_policy_np text[], rep_policy_pct integer[],
    rep_policy_adkim text[], rep_policy_aspf text[], rep_policy_fo text[], rep_policy_testing text[],
    rep_policy_discovery_method text[], rep_extensions text[], rep_record_count bigint[],
    rep_message_count bigint[], rep_warnings jsonb[],
    rec_report integer[], rec_record_no integer[], rec_source_ip inet[], rec_message_count bigint[],
    rec_disposition text[], rec_dkim_aligned text[], rec_spf_aligned text[], rec_override_reasons jsonb[],
    rec_override_comments jsonb[], rec_header_from text[], rec_envelope_from text[], rec_envelope_to text[],
    rec_dkim_count smallint[], rec_dkim_domain text[], rec_dkim_selector text[], rec_dkim_result text[],
    rec_dkim_human_result text[], rec_spf_count smallint[], rec_spf_domain text[], rec_spf_scope text[],
    rec_spf_result text[], rec_spf_human_result text[], rec_auth_more jsonb[], rec_raw jsonb[],
    rec_extensions text[]
)
RETURNS TABLE (input_id bigint, outcome text, reports_stored integer, reports_duplicate integer,
               records bigint, messages bigint, duplicate_of bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_input bigint;
    v_report bigint;
    v_ids bigint[] := '{}';
    v_outcome text := in_outcome;
    v_stored integer := 0;
    v_duplicates integer := 0;
    v_duplicate_records bigint := 0;
    v_duplicate_messages bigint := 0;
    v_duplicate_of bigint;
    v_identical bigint;
BEGIN
    SELECT i.id INTO v_identical FROM inputs i
    WHERE i.sha256 = in_sha256 AND i.outcome <> 'rejected'
    ORDER BY i.id LIMIT 1;
    IF v_identical IS NOT NULL THEN
        INSERT INTO inputs (channel, origin, sha256, size, received_at, outcome, duplicate_of)
        VALUES (in_channel, in_origin, in_sha256, in_size, in_received_at, 'duplicate', v_identical)
        RETURNING id INTO v_input;
        RETURN QUERY SELECT v_input, 'duplicate'::text, 0, 0, 0::bigint, 0::bigint, v_identical;
        RETURN;
    END IF;

    INSERT INTO inputs (channel, origin, sha256, size, received_at, outcome, stage, error, warnings,
                        reports_stored, reports_duplicate, records, messages)
    VALUES (in_channel, in_origin, in_sha256, in_size, in_received_at, v_outcome, in_stage, in_error,
            in_warnings, in_reports_stored, in_reports_duplicate, in_records, in_messages)
    RETURNING id INTO v_input;

    IF in_payload IS NOT NULL THEN
        INSERT INTO input_payloads (input, sealed, payload) VALUES (v_input, in_payload_sealed, in_payload);
    END IF;

    FOR n IN 1 .. coalesce(cardinality(rep_org_name), 0) LOOP
        v_report := NULL;
        INSERT INTO aggregate_reports (input, org_name, org_email, extra_contact_info, report_id, policy_domain,
            date_begin, date_end, errors, generator, schema, namespace, xml_version, policy_p, policy_sp, policy_np,
            policy_pct, policy_adkim, policy_aspf, policy_fo, policy_testing, policy_discovery_method, extensions,
            record_count, message_count, warnings, received_at)
        VALUES (v_input, rep_org_name[n], rep_org_email[n], rep_extra_contact_info[n], rep_report_id[n],
            rep_policy_domain[n], rep_date_begin[n], rep_date_end[n],
            ARRAY(SELECT jsonb_array_elements_text(rep_errors[n])), rep_generator[n], rep_schema[n],
            rep_namespace[n], rep_xml_version[n], rep_policy_p[n], rep_policy_sp[n], rep_policy_np[n],
            rep_policy_pct[n], rep_policy_adkim[n], rep_policy_aspf[n], rep_policy_fo[n], rep_policy_testing[n],
            rep_policy_discovery_method[n], rep_extensions[n], rep_record_count[n], rep_message_count[n],
            rep_warnings[n], in_received_at)
        ON CONFLICT ON CONSTRAINT aggregate_reports_natural_key DO NOTHING
        RETURNING id INTO v_report;
        v_ids := v_ids || v_report;

        IF v_report IS NULL THEN
            v_duplicates := v_duplicates + 1;
            v_duplicate_records := v_duplicate_records + rep_record_count[n];
            v_duplicate_messages := v_duplicate_messages + rep_message_count[n];
            IF v_duplicate_of IS NULL THEN
                SELECT a.input INTO v_duplicate_of FROM aggregate_reports a
                WHERE a.org_name = rep_org_name[n] AND a.report_id = rep_report_id[n]
                  AND a.policy_domain = rep_policy_domain[n] AND a.date_begin = rep_date_begin[n]
                  AND a.date_end = rep_date_end[n];
            END IF;
        ELSE
            v_stored := v_stored + 1;
        END IF;
    END LOOP;

    IF v_stored > 0 THEN
        INSERT INTO aggregate_records (report, record_no, date_begin, source_ip, message_count, disposition,
            dkim_aligned, spf_aligned, override_reasons, override_comments, header_from, envelope_from,
            envelope_to, dkim_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_count,
            spf_domain, spf_scope, spf_result, spf_human_result, auth_more, raw, extensions)
        SELECT v_ids[r.report], r.record_no, rep_date_begin[r.report], r.source_ip, r.message_count,
            r.disposition, r.dkim_aligned, r.spf_aligned,
            CASE WHEN r.override_reasons IS NOT NULL
                 THEN ARRAY(SELECT jsonb_array_elements_text(r.override_reasons)) END,
            CASE WHEN r.override_comments IS NOT NULL
                 THEN ARRAY(SELECT e ->> 0 FROM jsonb_array_elements(r.override_comments) AS c (e)) END,
            r.header_from, r.envelope_from, r.envelope_to, r.dkim_count, r.dkim_domain, r.dkim_selector,
            r.dkim_result, r.dkim_human_result, r.spf_count, r.spf_domain, r.spf_scope, r.spf_result,
            r.spf_human_result, r.auth_more, r.raw, r.extensions
        FROM unnest(rec_report, rec_record_no, rec_source_ip, rec_message_count, rec_disposition,
                    rec_dkim_aligned, rec_spf_aligned, rec_override_reasons, rec_override_comments,
                    rec_header_from, rec_envelope_from, rec_envelope_to, rec_dkim_count, rec_dkim_domain,
                    rec_dkim_selector, rec_dkim_result, rec_dkim_human_result, rec_spf_count, rec_spf_domain,
                    rec_spf_scope, rec_spf_result, rec_spf_human_result, rec_auth_more, rec_raw, rec_extensions)
             AS r (report, record_no, source_ip, message_count, disposition, dkim_aligned, spf_aligned,
                   override_reasons, override_comments, header_from, envelope_from, envelope_to, dkim_count,
                   dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_count, spf_domain, spf_scope,
                   spf_result, spf_human_result, auth_more, raw, extensions)
        WHERE v_ids[r.report] IS NOT NULL;

        INSERT INTO aggregate_rollup_queue (report) SELECT id FROM unnest(v_ids) AS q (id) WHERE id IS NOT NULL;
    END IF;

    IF v_duplicates > 0 THEN
        IF v_outcome = 'stored' AND v_stored = 0 THEN
            v_outcome := 'duplicate';
        ELSE
            v_duplicate_of := NULL;
        END IF;
        UPDATE inputs i SET outcome = v_outcome, reports_stored = v_stored,
            reports_duplicate = i.reports_duplicate + v_duplicates,
            records = i.records - v_duplicate_records, messages = i.messages - v_duplicate_messages,
            duplicate_of = v_duplicate_of
        WHERE i.id = v_input;
        RETURN QUERY SELECT v_input, v_outcome, v_stored, in_reports_duplicate + v_duplicates,
            in_records - v_duplicate_records, in_messages - v_duplicate_messages, v_duplicate_of;
        RETURN;
    END IF;

    RETURN QUERY SELECT v_input, v_outcome, in_reports_stored, in_reports_duplicate, in_records, in_messages,
        NULL::bigint;
END;
$$;
