-- Catalogue, devices, readings (hypertable), latest values and quarantine.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE sites (
    site_id   text PRIMARY KEY CHECK (site_id ~ '^[a-z0-9]+(-[a-z0-9]+)*$'),
    name      text NOT NULL,
    latitude  double precision NOT NULL CHECK (latitude BETWEEN -90 AND 90),
    longitude double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    timezone  text NOT NULL
);

CREATE TABLE metrics (
    metric_id   smallint PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    unit        text NOT NULL,
    min_value   double precision NOT NULL,
    max_value   double precision NOT NULL CHECK (max_value > min_value),
    domain      text NOT NULL CHECK (domain IN ('environment', 'living')),
    cumulative  boolean NOT NULL,
    description text NOT NULL
);

CREATE TABLE device_kinds (
    kind        text PRIMARY KEY,
    description text NOT NULL
);

CREATE TABLE device_kind_metrics (
    kind      text NOT NULL REFERENCES device_kinds ON DELETE CASCADE,
    metric_id smallint NOT NULL REFERENCES metrics,
    PRIMARY KEY (kind, metric_id)
);

-- `id` is the compact key stored in every reading; `device_id` is the public name.
CREATE TABLE devices (
    id                 integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id          text NOT NULL UNIQUE CHECK (device_id ~ '^[a-z0-9][a-z0-9_-]{2,63}$'),
    kind               text NOT NULL REFERENCES device_kinds,
    site_id            text NOT NULL REFERENCES sites,
    latitude           double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude          double precision CHECK (longitude BETWEEN -180 AND 180),
    mqtt_username      text NOT NULL UNIQUE,
    mqtt_password_hash text NOT NULL,
    status             text NOT NULL DEFAULT 'unknown' CHECK (status IN ('unknown', 'online', 'offline')),
    status_changed_at  timestamptz,
    last_seen          timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_site_kind ON devices (site_id, kind);

-- Narrow rows: 8 + 4 + 2 + 8 bytes of data. No foreign keys here: a per-row check would
-- cost ingest throughput, and ingest only writes ids it has just resolved from `devices`.
CREATE TABLE readings (
    time   timestamptz NOT NULL,
    device integer NOT NULL,
    metric smallint NOT NULL,
    value  double precision NOT NULL
);
SELECT create_hypertable('readings', 'time',
                         chunk_time_interval => INTERVAL '1 day',
                         create_default_indexes => false);
-- The key that makes a redelivered reading a no-op; it also serves per-device queries.
CREATE UNIQUE INDEX readings_device_metric_time ON readings (device, metric, time DESC);

CREATE TABLE latest_readings (
    device integer NOT NULL REFERENCES devices ON DELETE CASCADE,
    metric smallint NOT NULL REFERENCES metrics,
    time   timestamptz NOT NULL,
    value  double precision NOT NULL,
    PRIMARY KEY (device, metric)
);

CREATE TABLE quarantine (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now(),
    topic       text NOT NULL,
    device_id   text,
    reason      text NOT NULL CHECK (reason IN (
        'invalid_json', 'invalid_schema', 'unknown_device', 'unknown_metric', 'unit_mismatch',
        'out_of_range', 'non_finite', 'timestamp_out_of_window', 'payload_too_large')),
    detail      text NOT NULL,
    payload     bytea NOT NULL,
    replayed_at timestamptz
);
CREATE INDEX quarantine_received ON quarantine (received_at DESC);
CREATE INDEX quarantine_pending_device ON quarantine (device_id, reason) WHERE replayed_at IS NULL;
