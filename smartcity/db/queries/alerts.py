"""SQL of the alert evaluator (smartcity.alerts): its subjects, its reads, its state and outboxes.

Reads go through the planner (``smartcity_aggregate``) and ``smartcity_site_ispu``, as the API and
the panels read, so a rule means what a chart shows. Writes touch the tables of migration 014 only.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "BACKDATE_DEVICES", "CLAIM_DELIVERIES", "COUNT_TRANSITIONS", "DELETE_RULE_STATE", "INSERT_ALERT",
    "INSERT_DELIVERY", "INSERT_TRANSITION", "LOCK_RULE", "MARK_DELIVERY", "MARK_PUBLISHED",
    "RESOLVE_ALERT", "SELECT_ACTIVE_AT_SITE", "SELECT_AGGREGATE_SPAN", "SELECT_ISPU", "SELECT_ISPU_LOW",
    "SELECT_LAST_READING", "SELECT_METRIC", "SELECT_PROGRESS", "SELECT_READING_MINUTES",
    "SELECT_STATES", "SELECT_SUBJECT_DEVICES", "SELECT_UNPUBLISHED", "UPDATE_ALERT_LAST_VALUE",
    "UPSERT_PROGRESS", "UPSERT_STATE",
]

# The devices a rule selects: not revoked, of the kinds/sites/ids named (NULL: all), and, when a
# metric is given, of a kind that carries it. {"metric": text | None, "kinds", "sites", "devices"}
# → (device_id, site_id, id, created_at)
SELECT_SUBJECT_DEVICES: Final = """
SELECT d.device_id, d.site_id, d.id, d.created_at
FROM devices d
WHERE d.revoked_at IS NULL
  AND (%(kinds)s::text[] IS NULL OR d.kind = ANY (%(kinds)s::text[]))
  AND (%(sites)s::text[] IS NULL OR d.site_id = ANY (%(sites)s::text[]))
  AND (%(devices)s::text[] IS NULL OR d.device_id = ANY (%(devices)s::text[]))
  AND (%(metric)s::text IS NULL
       OR EXISTS (SELECT 1 FROM device_kind_metrics k JOIN metrics m ON m.metric_id = k.metric_id
                  WHERE k.kind = d.kind AND m.name = %(metric)s))
ORDER BY d.device_id
"""

# One planner call for every subject of a rule over a whole span (buckets in UTC).
# {"metric", "bucket", "agg", "start", "end", "devices": text[], "group_by"} → (key, time, value, count)
SELECT_AGGREGATE_SPAN: Final = """
SELECT a.key, a.time, a.value, a.count
FROM smartcity_aggregate(%(metric)s, %(bucket)s, %(agg)s, %(start)s, %(end)s,
                         device_ids => %(devices)s::text[], group_by => %(group_by)s, tz => 'UTC') a
"""

# The latest reading of each device before %(before)s and not before %(since)s: one backward
# index probe per (device, metric of its kind) on readings_device_metric_time.
# {"ids": int[], "since", "before"} → (device id, time)
SELECT_LAST_READING: Final = """
SELECT d.id, max(last.time)
FROM devices d
JOIN device_kind_metrics k ON k.kind = d.kind
CROSS JOIN LATERAL (SELECT r.time FROM readings r
                    WHERE r.device = d.id AND r.metric = k.metric_id
                      AND r.time < %(before)s AND r.time >= %(since)s
                    ORDER BY r.time DESC LIMIT 1) last
WHERE d.id = ANY (%(ids)s::int[])
GROUP BY d.id
"""

# The latest reading of each device in each minute of [start, end). {"ids", "start", "end"}
# → (device id, minute, latest time)
SELECT_READING_MINUTES: Final = """
SELECT r.device, time_bucket('1 minute', r.time) AS minute, max(r.time)
FROM readings r
WHERE r.device = ANY (%(ids)s::int[]) AND r.time >= %(start)s AND r.time < %(end)s
GROUP BY 1, 2
"""

# (metric name,) → a row when the metric exists
SELECT_METRIC: Final = "SELECT 1 FROM metrics WHERE name = %s"

# {"at"} → (site_id, ispu) of every site with an index at that time
SELECT_ISPU: Final = """
SELECT s.site_id, s.ispu FROM smartcity_site_ispu(%(at)s) s WHERE s.ispu IS NOT NULL
"""

# (category id,) → the index's lower edge of that category
SELECT_ISPU_LOW: Final = "SELECT i_low FROM ispu_categories WHERE id = %s"

# One evaluator at a time per rule: the lock lasts until the judging transaction ends.
LOCK_RULE: Final = "SELECT pg_advisory_xact_lock(hashtext('smartcity-alerts:' || %s))"

# (rule_id,) → (definition_hash, evaluated_through)
SELECT_PROGRESS: Final = """
SELECT definition_hash, evaluated_through FROM alert_rule_progress WHERE rule_id = %s
"""

# (rule_id, definition_hash, evaluated_through)
UPSERT_PROGRESS: Final = """
INSERT INTO alert_rule_progress (rule_id, definition_hash, evaluated_through)
VALUES (%s, %s, %s)
ON CONFLICT (rule_id) DO UPDATE
SET definition_hash = EXCLUDED.definition_hash, evaluated_through = EXCLUDED.evaluated_through,
    updated_at = now()
"""

# (rule_id,): a changed rule starts over
DELETE_RULE_STATE: Final = "DELETE FROM alert_subject_state WHERE rule_id = %s"

# (rule_id,) → (subject, state, since, alert_id, last_value)
SELECT_STATES: Final = """
SELECT subject, state, since, alert_id, last_value FROM alert_subject_state WHERE rule_id = %s
"""

# (rule_id, subject, site_id, device_id, state, since, alert_id, last_value)
UPSERT_STATE: Final = """
INSERT INTO alert_subject_state (rule_id, subject, site_id, device_id, state, since, alert_id, last_value)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (rule_id, subject) DO UPDATE
SET state = EXCLUDED.state, since = EXCLUDED.since, alert_id = EXCLUDED.alert_id,
    last_value = EXCLUDED.last_value, site_id = EXCLUDED.site_id, device_id = EXCLUDED.device_id
"""

# (rule_id, subject, site_id, device_id, severity, fired_at, value, summary) → (id,)
INSERT_ALERT: Final = """
INSERT INTO alerts (rule_id, subject, site_id, device_id, severity, state, fired_at, value, last_value,
                    summary)
VALUES (%s, %s, %s, %s, %s, 'firing', %s, %s, %s, %s)
RETURNING id
"""

# (resolved_at, last_value, alert id)
RESOLVE_ALERT: Final = """
UPDATE alerts SET state = 'resolved', resolved_at = %s, last_value = %s WHERE id = %s AND state = 'firing'
"""

# (last_value, alert id)
UPDATE_ALERT_LAST_VALUE: Final = "UPDATE alerts SET last_value = %s WHERE id = %s AND state = 'firing'"

# (alert_id, transition, at, value) → (id,)
INSERT_TRANSITION: Final = """
INSERT INTO alert_transitions (alert_id, transition, "at", value) VALUES (%s, %s, %s, %s) RETURNING id
"""

# (transition_id, url)
INSERT_DELIVERY: Final = "INSERT INTO alert_webhook_deliveries (transition_id, url) VALUES (%s, %s)"

# (limit,) → the oldest unpublished transitions with their alert:
# (id, transition, at, value, alert_id, rule_id, site_id, device_id, severity)
SELECT_UNPUBLISHED: Final = """
SELECT t.id, t.transition, t."at", t.value, a.id, a.rule_id, a.site_id, a.device_id, a.severity
FROM alert_transitions t JOIN alerts a ON a.id = t.alert_id
WHERE t.published_at IS NULL
ORDER BY t.id
LIMIT %s
"""

# (rule_id, site_id) → the active alerts of a rule at a site: (alert_id, device_id, fired_at, value)
SELECT_ACTIVE_AT_SITE: Final = """
SELECT id, device_id, fired_at, value FROM alerts
WHERE rule_id = %s AND site_id = %s AND state = 'firing'
ORDER BY fired_at, id
"""

# (transition id,)
MARK_PUBLISHED: Final = "UPDATE alert_transitions SET published_at = now() WHERE id = %s"

# (limit,) → due deliveries, locked for this sender: (transition_id, url, attempts, transition,
# at, value, alert_id, rule_id, subject, site_id, device_id, severity, fired_at, resolved_at, summary,
# alert value, alert state)
CLAIM_DELIVERIES: Final = """
SELECT w.transition_id, w.url, w.attempts, t.transition, t."at", t.value,
       a.id, a.rule_id, a.subject, a.site_id, a.device_id, a.severity, a.fired_at, a.resolved_at,
       a.summary, a.value, a.state
FROM alert_webhook_deliveries w
JOIN alert_transitions t ON t.id = w.transition_id
JOIN alerts a ON a.id = t.alert_id
WHERE w.delivered_at IS NULL AND w.gave_up_at IS NULL AND w.next_attempt_at <= now()
ORDER BY w.next_attempt_at, w.transition_id
LIMIT %s
FOR UPDATE OF w SKIP LOCKED
"""

# {"id", "url", "attempts", "delivered": bool, "gave_up": bool, "retry_in_s", "error"}
MARK_DELIVERY: Final = """
UPDATE alert_webhook_deliveries
SET attempts = %(attempts)s,
    delivered_at = CASE WHEN %(delivered)s THEN now() END,
    gave_up_at = CASE WHEN %(gave_up)s THEN now() END,
    next_attempt_at = now() + make_interval(secs => %(retry_in_s)s),
    last_error = %(error)s
WHERE transition_id = %(id)s AND url = %(url)s
"""

# () → (transitions stored,)
COUNT_TRANSITIONS: Final = "SELECT count(*) FROM alert_transitions"

# (created_at,): the benchmark's fleet, registered before the history it stores
BACKDATE_DEVICES: Final = "UPDATE devices SET created_at = %s"
