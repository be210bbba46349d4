"""SQL of commands to actuators (migration 015): store one, record its delivery, settle outcomes, list.

The CLI (`smartcity.commands`, sync) and the API (`api.queries.commands`, async) run these same
statements. The comment above each one gives its parameters → the rows it returns.

Settling is one UPDATE … RETURNING, safe to run from any number of processes at once: a pending
command is acknowledged by the first reading of ``lamp_on`` after ``issued_at`` and no later than
``deadline`` whose value is the commanded state (``smartcity_command_level`` > 0, in the site's zone
for a schedule; a dim also needs ``lamp_power`` in the same report), and times out once the
deadline is ``grace`` behind the database clock with no such reading: the grace covers a reading
taken before the deadline that is still on its way through ingest. Either way ``outcome_at`` is a
time from the data (the reading's, or the deadline), so settling later gives the same answer.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "COLUMNS",
    "INSERT_COMMAND",
    "MARK_NOT_SENT",
    "MARK_PUBLISHED",
    "SELECT_COMMAND",
    "SELECT_DEVICE_COMMANDS",
    "SELECT_TARGET",
    "SETTLE",
]

COLUMNS: Final = ("command_id, device_id, action, level, schedule, issued_at, issued_by, deadline,"
                  " outcome, outcome_at, detail, published_at")

# (device_id,) → (device_id, kind, site_id, revoked_at), or no row for an unknown device.
SELECT_TARGET: Final = "SELECT device_id, kind, site_id, revoked_at FROM devices WHERE device_id = %s"

# {command_id, device_id, action, level, schedule (Jsonb | None), issued_at, issued_by, deadline}
# → the stored command (COLUMNS).
INSERT_COMMAND: Final = (
    "INSERT INTO commands (command_id, device_id, action, level, schedule, issued_at, issued_by,"
    " deadline) VALUES (%(command_id)s, %(device_id)s, %(action)s, %(level)s, %(schedule)s,"
    " %(issued_at)s, %(issued_by)s, %(deadline)s) RETURNING " + COLUMNS
)

# (command_id,) → the command (COLUMNS), once the broker acknowledged it; it keeps its outcome.
MARK_PUBLISHED: Final = (
    "UPDATE commands SET published_at = now() WHERE command_id = %s RETURNING " + COLUMNS
)

# (detail, command_id) → the command (COLUMNS): the broker could not take it; it never will.
MARK_NOT_SENT: Final = (
    "UPDATE commands SET outcome = 'not_sent', outcome_at = now(), detail = %s"
    " WHERE command_id = %s AND outcome = 'pending' RETURNING " + COLUMNS
)

# {"device": device_id | None, "command": command_id | None, "grace": interval}
# → (command_id, outcome) of each command settled now (None: every device, every command).
SETTLE: Final = """
WITH pending AS (
    SELECT c.id, c.action, c.level, c.schedule, c.issued_at, c.deadline,
           d.id AS device, d.status, d.status_changed_at, d.last_seen, s.timezone
    FROM commands c
    JOIN devices d ON d.device_id = c.device_id
    JOIN sites s ON s.site_id = d.site_id
    WHERE c.outcome = 'pending'
      AND (%(device)s::text IS NULL OR c.device_id = %(device)s)
      AND (%(command)s::text IS NULL OR c.command_id = %(command)s)
    FOR UPDATE OF c SKIP LOCKED
), judged AS (
    SELECT p.*, (
        SELECT r.time FROM readings r
        WHERE r.device = p.device
          AND r.metric = (SELECT metric_id FROM metrics WHERE name = 'lamp_on')
          AND r.time > p.issued_at AND r.time <= p.deadline
          AND r.value = (smartcity_command_level(p.action, p.level, p.schedule, r.time,
                                                 p.timezone) > 0)::integer
          AND (p.action <> 'dim' OR EXISTS (
              SELECT 1 FROM readings w
              WHERE w.device = p.device AND w.time = r.time
                AND w.metric = (SELECT metric_id FROM metrics WHERE name = 'lamp_power')))
        ORDER BY r.time
        LIMIT 1
    ) AS acked_at
    FROM pending p
)
UPDATE commands c
SET outcome = CASE WHEN j.acked_at IS NULL THEN 'timed_out' ELSE 'acknowledged' END,
    outcome_at = coalesce(j.acked_at, j.deadline),
    detail = CASE
        WHEN j.acked_at IS NOT NULL THEN
            'the device reported the commanded state at '
            || to_char(j.acked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        ELSE format('no telemetry change within %%s s; %%s',
                    round(extract(epoch FROM j.deadline - j.issued_at)),
                    CASE j.status
                        WHEN 'offline' THEN 'the device is offline since ' || coalesce(
                            to_char(j.status_changed_at AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD"T"HH24:MI:SS"Z"'), 'an unknown time')
                        WHEN 'online' THEN 'the device is online (last seen ' || coalesce(
                            to_char(j.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            'never') || ') but did not report the commanded state'
                        ELSE 'the device has never reported its status (last seen ' || coalesce(
                            to_char(j.last_seen AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            'never') || ')'
                    END)
    END
FROM judged j
WHERE c.id = j.id AND (j.acked_at IS NOT NULL OR j.deadline + %(grace)s::interval <= now())
RETURNING c.command_id, c.outcome
"""

# (command_id,) → the command (COLUMNS), or none.
SELECT_COMMAND: Final = "SELECT " + COLUMNS + " FROM commands WHERE command_id = %s"

# {"device": device_id, "before": id | None, "limit": n} → up to n commands (COLUMNS plus id),
# newest first, older than the command with id ``before``.
SELECT_DEVICE_COMMANDS: Final = (
    "SELECT id, " + COLUMNS + " FROM commands WHERE device_id = %(device)s"
    " AND (%(before)s::bigint IS NULL OR id < %(before)s) ORDER BY id DESC LIMIT %(limit)s"
)
