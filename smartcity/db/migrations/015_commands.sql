-- Commands to actuators (README "Commands to actuators"): every command the platform sends on a
-- device's commands topic (smartcity/contract.py, Command), with its outcome. A command is
-- acknowledged by a telemetry reading that shows the commanded state, or times out at its
-- deadline; one the broker could not take is not_sent. Outcomes are settled from the readings
-- (smartcity/db/queries/commands.py, SETTLE), so outcome_at is the acknowledging reading's time or
-- the deadline, never the time somebody looked.
CREATE TABLE commands (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    command_id   text NOT NULL UNIQUE CHECK (command_id ~ '^[A-Za-z0-9_-]{8,64}$'),
    device_id    text NOT NULL REFERENCES devices (device_id) ON UPDATE CASCADE ON DELETE CASCADE,
    action       text NOT NULL CHECK (action IN ('on', 'off', 'dim', 'schedule')),
    level        smallint CHECK (level BETWEEN 0 AND 100),
    schedule     jsonb CHECK (schedule IS NULL OR jsonb_typeof(schedule) = 'array'),
    issued_at    timestamptz NOT NULL,
    issued_by    text NOT NULL,  -- the API key's id, or "cli:<login>" for an operator's command
    deadline     timestamptz NOT NULL CHECK (deadline > issued_at),
    outcome      text NOT NULL DEFAULT 'pending'
                 CHECK (outcome IN ('pending', 'acknowledged', 'timed_out', 'not_sent')),
    outcome_at   timestamptz,
    detail       text,
    published_at timestamptz,  -- when the broker acknowledged it (QoS 1 PUBACK)
    CHECK ((outcome = 'pending') = (outcome_at IS NULL)),
    CHECK ((action = 'dim') = (level IS NOT NULL)),
    CHECK ((action = 'schedule') = (schedule IS NOT NULL))
);
-- A device's commands, newest first (GET /devices/{id}/commands pages on id).
CREATE INDEX commands_device ON commands (device_id, id DESC);
-- What the settler looks at: the few commands still waiting for their outcome.
CREATE INDEX commands_pending ON commands (deadline) WHERE outcome = 'pending';

-- The lamp level (0–100 %) a command asks for at time `at` in zone `tz`: on 100, off 0, dim its
-- level; a schedule the entry in force at that local time (the latest at or before it, else the
-- day's last one, still in force since yesterday).
CREATE FUNCTION smartcity_command_level(action text, level integer, schedule jsonb,
                                        "at" timestamptz, tz text)
RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE action
        WHEN 'on' THEN 100
        WHEN 'off' THEN 0
        WHEN 'dim' THEN level
        ELSE (SELECT CASE e->>'action' WHEN 'on' THEN 100 WHEN 'off' THEN 0
                                       ELSE (e->>'level')::integer END
              FROM jsonb_array_elements(schedule) AS e
              ORDER BY ((e->>'at')::time <= ("at" AT TIME ZONE tz)::time) DESC,
                       (e->>'at')::time DESC
              LIMIT 1)
    END
$$;

-- The API (and `smartcity devices command`, which logs in as the API) stores commands and settles
-- their outcomes; it changes nothing else of a command once stored.
GRANT SELECT, INSERT ON commands TO smartcity_api;
GRANT UPDATE (outcome, outcome_at, detail, published_at) ON commands TO smartcity_api;
GRANT EXECUTE ON FUNCTION smartcity_command_level(text, integer, jsonb, timestamptz, text)
    TO smartcity_api;
-- Grafana may show commands and their outcomes next to the lights' readings.
GRANT SELECT ON commands TO smartcity_grafana;
