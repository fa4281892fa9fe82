-- Stores several new small inputs and their complete reports in one statement: what
-- dmarcpipe_store_input does for one input, set-based for a batch, so that an import of many
-- small files pays the cost of starting each statement once per batch rather than once per
-- input. Used by `import` (Store::ingest_many, store/src/pipeline.rs); every input still ends
-- with exactly one row and one outcome, and the batch commits as a whole. The caller puts no
-- two inputs with the same SHA-256 in one batch. Single inputs (serve, stdin) keep
-- dmarcpipe_store_input: for one input this function's set-based statements cost about a
-- fifth more (measured with `make bench-smtp`).
--
-- Arguments as for dmarcpipe_store_input, with one array element per input for the in_*
-- columns and rep_input, the 1-based position of a report's input. rec_report is the 1-based
-- position of a record's report among all the reports of the batch. Returns one row per input,
-- in the order given.
CREATE FUNCTION dmarcpipe_store_inputs(
    in_channel text[], in_origin text[], in_sha256 bytea[], in_size bigint[], in_received_at timestamptz[],
    in_outcome text[], in_stage text[], in_error text[], in_warnings jsonb[], in_reports_stored integer[],
    in_reports_duplicate integer[], in_records bigint[], in_messages bigint[],
    in_payload bytea[], in_payload_sealed boolean[],
    rep_input integer[],
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
RETURNS TABLE (input_no integer, input_id bigint, outcome text, reports_stored integer,
               reports_duplicate integer, records bigint, messages bigint, duplicate_of bigint)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_identical bigint[];
    v_inputs bigint[];
    v_reports bigint[];
BEGIN
    -- Inputs whose bytes arrived before and were not rejected are duplicates of the first such.
    SELECT array_agg((SELECT i.id FROM inputs i WHERE i.sha256 = s.sha AND i.outcome <> 'rejected'
                      ORDER BY i.id LIMIT 1) ORDER BY s.n)
    INTO v_identical
    FROM unnest(in_sha256) WITH ORDINALITY AS s (sha, n);

    -- One row per input, written as if every report were new (corrected below). The ids come
    -- back by SHA-256, which is unique within a batch.
    WITH written AS (
        INSERT INTO inputs (channel, origin, sha256, size, received_at, outcome, stage, error, warnings,
                            reports_stored, reports_duplicate, records, messages, duplicate_of)
        SELECT u.channel, u.origin, u.sha, u.size, u.received_at,
               CASE WHEN v_identical[u.n] IS NULL THEN u.outcome ELSE 'duplicate' END,
               CASE WHEN v_identical[u.n] IS NULL THEN u.stage END,
               CASE WHEN v_identical[u.n] IS NULL THEN u.error END,
               CASE WHEN v_identical[u.n] IS NULL THEN u.warnings ELSE '[]' END,
               CASE WHEN v_identical[u.n] IS NULL THEN u.reports_stored ELSE 0 END,
               CASE WHEN v_identical[u.n] IS NULL THEN u.reports_duplicate ELSE 0 END,
               CASE WHEN v_identical[u.n] IS NULL THEN u.records ELSE 0 END,
               CASE WHEN v_identical[u.n] IS NULL THEN u.messages ELSE 0 END,
               v_identical[u.n]
        FROM unnest(in_channel, in_origin, in_sha256, in_size, in_received_at, in_outcome, in_stage, in_error,
                    in_warnings, in_reports_stored, in_reports_duplicate, in_records, in_messages)
             WITH ORDINALITY AS u (channel, origin, sha, size, received_at, outcome, stage, error, warnings,
                                   reports_stored, reports_duplicate, records, messages, n)
        ORDER BY u.n
        RETURNING id, sha256
    )
    SELECT array_agg(w.id ORDER BY s.n) INTO v_inputs
    FROM unnest(in_sha256) WITH ORDINALITY AS s (sha, n) JOIN written w ON w.sha256 = s.sha;
    IF cardinality(v_inputs) IS DISTINCT FROM cardinality(in_sha256) THEN
        RAISE EXCEPTION 'dmarcpipe_store_inputs: inputs of a batch must have distinct SHA-256 digests';
    END IF;

    -- (The IF conditions are plain expressions, cheaper than a statement that finds nothing.)
    IF cardinality(array_remove(in_payload, NULL)) > 0 THEN
        INSERT INTO input_payloads (input, sealed, payload)
        SELECT v_inputs[p.n], p.sealed, p.payload
        FROM unnest(in_payload, in_payload_sealed) WITH ORDINALITY AS p (payload, sealed, n)
        WHERE p.payload IS NOT NULL AND v_identical[p.n] IS NULL;
    END IF;

    -- Reports not stored before. A report's id comes back only to the first occurrence of its
    -- natural key in the batch; later ones (in the same input or another) are duplicates.
    WITH source AS (
        SELECT s.*, min(s.n) OVER (PARTITION BY s.org_name, s.report_id, s.policy_domain, s.date_begin,
                                                s.date_end) AS first_n
        FROM unnest(rep_input, rep_org_name, rep_report_id, rep_policy_domain, rep_date_begin, rep_date_end)
             WITH ORDINALITY AS s (input, org_name, report_id, policy_domain, date_begin, date_end, n)
    ), written AS (
        INSERT INTO aggregate_reports (input, org_name, org_email, extra_contact_info, report_id, policy_domain,
            date_begin, date_end, errors, generator, schema, namespace, xml_version, policy_p, policy_sp, policy_np,
            policy_pct, policy_adkim, policy_aspf, policy_fo, policy_testing, policy_discovery_method, extensions,
            record_count, message_count, warnings, received_at)
        SELECT v_inputs[r.input], r.org_name, r.org_email, r.extra_contact_info, r.report_id, r.policy_domain,
            r.date_begin, r.date_end,
            ARRAY(SELECT jsonb_array_elements_text(r.errors)), r.generator, r.schema, r.namespace, r.xml_version,
            r.policy_p, r.policy_sp, r.policy_np, r.policy_pct, r.policy_adkim, r.policy_aspf, r.policy_fo,
            r.policy_testing, r.policy_discovery_method, r.extensions, r.record_count, r.message_count, r.warnings,
            in_received_at[r.input]
        FROM unnest(rep_input, rep_org_name, rep_org_email, rep_extra_contact_info, rep_report_id,
                    rep_policy_domain, rep_date_begin, rep_date_end, rep_errors, rep_generator, rep_schema,
                    rep_namespace, rep_xml_version, rep_policy_p, rep_policy_sp, rep_policy_np, rep_policy_pct,
                    rep_policy_adkim, rep_policy_aspf, rep_policy_fo, rep_policy_testing,
                    rep_policy_discovery_method, rep_extensions, rep_record_count, rep_message_count, rep_warnings)
             WITH ORDINALITY AS r (input, org_name, org_email, extra_contact_info, report_id, policy_domain,
                    date_begin, date_end, errors, generator, schema, namespace, xml_version, policy_p, policy_sp,
                    policy_np, policy_pct, policy_adkim, policy_aspf, policy_fo, policy_testing,
                    policy_discovery_method, extensions, record_count, message_count, warnings, n)
        WHERE v_identical[r.input] IS NULL
        ORDER BY r.n
        ON CONFLICT ON CONSTRAINT aggregate_reports_natural_key DO NOTHING
        RETURNING id, input, org_name, report_id, policy_domain, date_begin, date_end
    )
    SELECT array_agg(w.id ORDER BY s.n) INTO v_reports
    FROM source s
    LEFT JOIN written w ON s.n = s.first_n AND w.input = v_inputs[s.input] AND w.org_name = s.org_name
        AND w.report_id = s.report_id AND w.policy_domain = s.policy_domain AND w.date_begin = s.date_begin
        AND w.date_end = s.date_end;

    IF cardinality(array_remove(v_reports, NULL)) > 0 THEN
        INSERT INTO aggregate_records (report, record_no, date_begin, source_ip, message_count, disposition,
            dkim_aligned, spf_aligned, override_reasons, override_comments, header_from, envelope_from,
            envelope_to, dkim_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_count,
            spf_domain, spf_scope, spf_result, spf_human_result, auth_more, raw, extensions)
        SELECT v_reports[r.report], r.record_no, rep_date_begin[r.report], r.source_ip, r.message_count,
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
        WHERE v_reports[r.report] IS NOT NULL;

        INSERT INTO aggregate_rollup_queue (report)
        SELECT q.id FROM unnest(v_reports) AS q (id) WHERE q.id IS NOT NULL;
    END IF;

    -- Inputs some of whose reports were stored before: counters and outcome corrected (all
    -- duplicates: outcome `duplicate`, linked to the input that holds the first one).
    IF cardinality(array_remove(v_reports, NULL)) < coalesce(cardinality(rep_input), 0) THEN
        WITH skipped AS (
            SELECT s.input, count(*) FILTER (WHERE v_reports[s.n] IS NULL)::integer AS reports,
                   count(*) FILTER (WHERE v_reports[s.n] IS NOT NULL)::integer AS stored,
                   coalesce(sum(rep_record_count[s.n]) FILTER (WHERE v_reports[s.n] IS NULL), 0)::bigint AS records,
                   coalesce(sum(rep_message_count[s.n]) FILTER (WHERE v_reports[s.n] IS NULL), 0)::bigint AS messages,
                   min(s.n) FILTER (WHERE v_reports[s.n] IS NULL) AS first_skipped
            FROM unnest(rep_input) WITH ORDINALITY AS s (input, n)
            WHERE v_identical[s.input] IS NULL
            GROUP BY s.input
        )
        UPDATE inputs i
        SET outcome = CASE WHEN i.outcome = 'stored' AND k.stored = 0 THEN 'duplicate' ELSE i.outcome END,
            reports_stored = k.stored,
            reports_duplicate = i.reports_duplicate + k.reports,
            records = i.records - k.records,
            messages = i.messages - k.messages,
            duplicate_of = CASE WHEN i.outcome = 'stored' AND k.stored = 0 THEN
                (SELECT a.input FROM aggregate_reports a
                 WHERE a.org_name = rep_org_name[k.first_skipped] AND a.report_id = rep_report_id[k.first_skipped]
                   AND a.policy_domain = rep_policy_domain[k.first_skipped]
                   AND a.date_begin = rep_date_begin[k.first_skipped] AND a.date_end = rep_date_end[k.first_skipped])
            END
        FROM skipped k
        WHERE k.reports > 0 AND i.id = v_inputs[k.input];
    END IF;

    RETURN QUERY
    SELECT s.n::integer, i.id, i.outcome, i.reports_stored, i.reports_duplicate, i.records, i.messages,
           i.duplicate_of
    FROM unnest(v_inputs) WITH ORDINALITY AS s (id, n)
    JOIN inputs i ON i.id = s.id
    ORDER BY s.n;
END;
$$;
