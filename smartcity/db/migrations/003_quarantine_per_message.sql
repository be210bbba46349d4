-- Quarantine: the reason codes invalid_topic and storage_rejected; one row per message, with the
-- payload once (size as received kept), every reason of the message, the rejected parts as bounded
-- structured detail, and replays pointing at their source row instead of copying its payload.
-- Latest values keep their receive time, so a reading stamped in the future cannot freeze them.
ALTER TABLE quarantine DROP CONSTRAINT quarantine_reason_check;
ALTER TABLE quarantine ADD CONSTRAINT quarantine_reason_check CHECK (reason IN (
    'invalid_json', 'invalid_schema', 'invalid_topic', 'unknown_device', 'unknown_metric',
    'unit_mismatch', 'out_of_range', 'non_finite', 'timestamp_out_of_window', 'payload_too_large',
    'storage_rejected'));

ALTER TABLE quarantine
    ADD COLUMN reasons      text[],
    ADD COLUMN parts        jsonb,
    ADD COLUMN payload_size integer,
    ADD COLUMN replay_of    bigint REFERENCES quarantine ON DELETE CASCADE,
    ALTER COLUMN payload DROP NOT NULL;
UPDATE quarantine SET
    reasons = ARRAY[reason],
    parts = jsonb_build_object('total', 1, 'by_reason', jsonb_build_object(reason, 1),
                               'first', jsonb_build_array(jsonb_build_object('reason', reason, 'detail', detail))),
    payload_size = length(payload);
ALTER TABLE quarantine
    ALTER COLUMN reasons SET NOT NULL,
    ALTER COLUMN parts SET NOT NULL,
    ALTER COLUMN payload_size SET NOT NULL,
    ADD CONSTRAINT quarantine_reasons_check CHECK (reason = ANY(reasons) AND reasons <@ ARRAY[
        'invalid_json', 'invalid_schema', 'invalid_topic', 'unknown_device', 'unknown_metric',
        'unit_mismatch', 'out_of_range', 'non_finite', 'timestamp_out_of_window', 'payload_too_large',
        'storage_rejected']::text[]),
    ADD CONSTRAINT quarantine_payload_once CHECK ((payload IS NULL) = (replay_of IS NOT NULL)),
    -- NOT VALID: rows kept before this migration may hold larger payloads; new ones may not.
    ADD CONSTRAINT quarantine_payload_capped CHECK (length(payload) <= 65536) NOT VALID;
CREATE INDEX quarantine_reasons ON quarantine USING gin (reasons);
CREATE INDEX quarantine_replay_of ON quarantine (replay_of) WHERE replay_of IS NOT NULL;

ALTER TABLE latest_readings ADD COLUMN received_at timestamptz;
