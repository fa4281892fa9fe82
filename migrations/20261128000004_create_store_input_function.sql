-- Stores a new input and its complete reports in one statement (one round trip, one implicit
-- transaction): the path of almost every input, whose reports are small. Reports still being
-- streamed take the transactional path with COPY instead (see store/src/pipeline.rs).
--
-- new_input: the inputs row as the client computed it assuming every report is new;
-- reports: [{"report": <aggregate_reports columns>, "records": [<aggregate_records columns>]}].
-- Reports already stored (natural key) are skipped and the input's outcome and counters are
-- corrected here, in the same transaction.
CREATE FUNCTION dmarcpipe_store_input(new_input json, reports json, payload bytea, payload_sealed boolean)
RETURNS TABLE (input_id bigint, outcome text, reports_stored integer, reports_duplicate integer,
               records bigint, messages bigint, duplicate_of bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_input bigint;
    v_report bigint;
    v_item json;
    v_row aggregate_reports;
    v_outcome text := new_input ->> 'outcome';
    v_stored integer := 0;
    v_duplicates integer := 0;
    v_duplicate_records bigint := 0;
    v_duplicate_messages bigint := 0;
    v_duplicate_of bigint;
BEGIN
    INSERT INTO inputs (channel, origin, sha256, size, received_at, outcome, stage, error, warnings,
                        reports_stored, reports_duplicate, records, messages)
    VALUES (new_input ->> 'channel', new_input ->> 'origin', decode(new_input ->> 'sha256', 'hex'),
            (new_input ->> 'size')::bigint, (new_input ->> 'received_at')::timestamptz, v_outcome,
            new_input ->> 'stage', new_input ->> 'error', coalesce((new_input -> 'warnings')::jsonb, '[]'),
            (new_input ->> 'reports_stored')::integer, (new_input ->> 'reports_duplicate')::integer,
            (new_input ->> 'records')::bigint, (new_input ->> 'messages')::bigint)
    RETURNING id INTO v_input;

    IF payload IS NOT NULL THEN
        INSERT INTO input_payloads (input, sealed, payload) VALUES (v_input, payload_sealed, payload);
    END IF;

    FOR v_item IN SELECT value FROM json_array_elements(reports) LOOP
        v_row := json_populate_record(NULL::aggregate_reports, v_item -> 'report');
        v_report := NULL;
        INSERT INTO aggregate_reports (input, org_name, org_email, extra_contact_info, report_id, policy_domain,
            date_begin, date_end, errors, generator, schema, namespace, xml_version, policy_p, policy_sp, policy_np,
            policy_pct, policy_adkim, policy_aspf, policy_fo, policy_testing, policy_discovery_method, extensions,
            record_count, message_count, warnings, received_at)
        VALUES (v_input, v_row.org_name, v_row.org_email, v_row.extra_contact_info, v_row.report_id,
            v_row.policy_domain, v_row.date_begin, v_row.date_end, coalesce(v_row.errors, '{}'), v_row.generator,
            v_row.schema, v_row.namespace, v_row.xml_version, v_row.policy_p, v_row.policy_sp, v_row.policy_np,
            v_row.policy_pct, v_row.policy_adkim, v_row.policy_aspf, v_row.policy_fo, v_row.policy_testing,
            v_row.policy_discovery_method, v_row.extensions, v_row.record_count, v_row.message_count,
            coalesce(v_row.warnings, '[]'), v_row.received_at)
        ON CONFLICT ON CONSTRAINT aggregate_reports_natural_key DO NOTHING
        RETURNING id INTO v_report;

        IF v_report IS NULL THEN
            v_duplicates := v_duplicates + 1;
            v_duplicate_records := v_duplicate_records + v_row.record_count;
            v_duplicate_messages := v_duplicate_messages + v_row.message_count;
            IF v_duplicate_of IS NULL THEN
                SELECT a.input INTO v_duplicate_of FROM aggregate_reports a
                WHERE a.org_name = v_row.org_name AND a.report_id = v_row.report_id
                  AND a.policy_domain = v_row.policy_domain AND a.date_begin = v_row.date_begin
                  AND a.date_end = v_row.date_end;
            END IF;
        ELSE
            v_stored := v_stored + 1;
            INSERT INTO aggregate_records (report, record_no, date_begin, source_ip, message_count, disposition,
                dkim_aligned, spf_aligned, override_reasons, override_comments, header_from, envelope_from,
                envelope_to, dkim_count, dkim_domain, dkim_selector, dkim_result, dkim_human_result, spf_count,
                spf_domain, spf_scope, spf_result, spf_human_result, auth_more, raw, extensions)
            SELECT v_report, r.record_no, r.date_begin, r.source_ip, r.message_count, r.disposition,
                r.dkim_aligned, r.spf_aligned, r.override_reasons, r.override_comments, r.header_from,
                r.envelope_from, r.envelope_to, r.dkim_count, r.dkim_domain, r.dkim_selector, r.dkim_result,
                r.dkim_human_result, r.spf_count, r.spf_domain, r.spf_scope, r.spf_result, r.spf_human_result,
                r.auth_more, r.raw, r.extensions
            FROM json_populate_recordset(NULL::aggregate_records, v_item -> 'records') r;
        END IF;
    END LOOP;

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
    END IF;

    RETURN QUERY SELECT i.id, i.outcome, i.reports_stored, i.reports_duplicate, i.records, i.messages, i.duplicate_of
                 FROM inputs i WHERE i.id = v_input;
END;
$$;
