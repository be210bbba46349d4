-- Alerts (README "Alerts"): what the evaluator (smartcity/alerts, `smartcity alerts run`) keeps so
-- that it gives the same answer after a restart, and what the API, Grafana and notifications read.
--
-- A rule (the rule file, smartcity/alerts/rules.py) is judged for each of its subjects: a device or
-- a site. Each (rule, subject) has one row of state; an episode of a condition holding is one alert
-- (firing, then resolved); each change of an alert is one transition, published to MQTT and sent
-- to the rule's webhook from an outbox, so a broker or receiver that is down delays them and
-- loses none.

-- How far each rule has been judged. definition_hash is the rule's definition as it was judged:
-- when an operator changes a rule, its subjects' state starts over instead of carrying on under a
-- different condition.
CREATE TABLE alert_rule_progress (
    rule_id           text PRIMARY KEY,
    definition_hash   text NOT NULL,
    evaluated_through timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- One episode of a rule's condition at one subject. site_id is where it happened (the topic's
-- site); device_id is NULL for a site-scoped rule.
CREATE TABLE alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id     text NOT NULL,
    subject     text NOT NULL,
    site_id     text NOT NULL REFERENCES sites (site_id),
    device_id   text,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    state       text NOT NULL CHECK (state IN ('firing', 'resolved')),
    fired_at    timestamptz NOT NULL,
    resolved_at timestamptz,
    value       double precision,  -- the value judged when it fired
    last_value  double precision,  -- the latest value judged while it was active
    summary     text NOT NULL,
    acked_at    timestamptz,
    acked_by    text,
    ack_note    text CHECK (length(ack_note) <= 2000),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL)),
    CHECK ((acked_at IS NULL) = (acked_by IS NULL))
);
CREATE INDEX alerts_active ON alerts (site_id, rule_id) WHERE state = 'firing';
CREATE INDEX alerts_fired_at ON alerts (fired_at DESC);
-- At most one active episode per rule and subject: a second would be a repeated transition.
CREATE UNIQUE INDEX alerts_one_active ON alerts (rule_id, subject) WHERE state = 'firing';

-- The state machine of each (rule, subject): ok → pending (holding, not yet for `for`) → firing
-- → clearing (back past the line with hysteresis, not yet for `clear_for`) → ok. since is when the
-- current state began, in evaluation time (the whole minute judged), not wall-clock time.
CREATE TABLE alert_subject_state (
    rule_id    text NOT NULL,
    subject    text NOT NULL,
    site_id    text NOT NULL REFERENCES sites (site_id),
    device_id  text,
    state      text NOT NULL CHECK (state IN ('ok', 'pending', 'firing', 'clearing')),
    since      timestamptz NOT NULL,
    alert_id   bigint REFERENCES alerts (id),
    last_value double precision,
    PRIMARY KEY (rule_id, subject)
);

-- Each change of an alert, in order. `at` is the evaluation time it happened at; recorded_at the
-- wall-clock time it was stored. published_at is set once the broker acknowledged the retained
-- message (QoS 1 PUBACK): the outbox of the MQTT publisher.
CREATE TABLE alert_transitions (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id     bigint NOT NULL REFERENCES alerts (id),
    transition   text NOT NULL CHECK (transition IN ('firing', 'resolved')),
    "at"         timestamptz NOT NULL,
    value        double precision,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz,
    UNIQUE (alert_id, transition)
);
CREATE INDEX alert_transitions_unpublished ON alert_transitions (id) WHERE published_at IS NULL;
CREATE INDEX alert_transitions_at ON alert_transitions ("at");

-- The webhook outbox: one row per transition and URL, retried with backoff until delivered or
-- given up; last_error says why the latest attempt failed.
CREATE TABLE alert_webhook_deliveries (
    transition_id   bigint NOT NULL REFERENCES alert_transitions (id),
    url             text NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    gave_up_at      timestamptz,
    last_error      text,
    PRIMARY KEY (transition_id, url)
);
CREATE INDEX alert_webhook_deliveries_due ON alert_webhook_deliveries (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- ---- smartcity_alerts: the evaluator's group role (README "Database roles") --------------------
-- It reads what the planner, the ISPU and the silence check read, and writes its own tables only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'smartcity_alerts') THEN
        CREATE ROLE smartcity_alerts NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO smartcity_alerts;
GRANT SELECT ON sites, metrics, device_kinds, device_kind_metrics,
                readings, latest_readings,
                rollup_1m, rollup_1h, rollup_1d, rollup_settings, rollup_pending,
                ispu_categories, ispu_pollutants, ispu_breakpoints, ispu_settings
    TO smartcity_alerts;
GRANT SELECT (id, device_id, kind, site_id, status, status_changed_at, last_seen, created_at, revoked_at)
    ON devices TO smartcity_alerts;
GRANT SELECT, INSERT, UPDATE ON alert_rule_progress, alerts, alert_subject_state, alert_transitions,
                                alert_webhook_deliveries
    TO smartcity_alerts;
GRANT DELETE ON alert_subject_state, alert_rule_progress TO smartcity_alerts;
GRANT EXECUTE ON FUNCTION
    smartcity_aggregate(text, text, text, timestamptz, timestamptz, text[], text[], text, text),
    smartcity_bucket_width(text),
    smartcity_bucket_ceil(interval, timestamptz, text),
    smartcity_counter_rise(double precision, double precision),
    smartcity_site_ispu(timestamptz),
    smartcity_ispu_sub_index(text, double precision),
    smartcity_ispu_round_up(double precision)
    TO smartcity_alerts;
REVOKE ALL ON api_keys, broker_accounts, schema_migrations FROM smartcity_alerts;

-- The API lists alerts and their transitions and records acknowledgements (who, when, note).
GRANT SELECT ON alerts, alert_transitions TO smartcity_api;
GRANT UPDATE (acked_at, acked_by, ack_note) ON alerts TO smartcity_api;
-- Grafana's annotations read the transitions (dashboards), the active-alerts table the alerts.
GRANT SELECT ON alerts, alert_transitions TO smartcity_grafana;
