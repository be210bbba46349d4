-- Broker identity (README "Broker identity and ACLs"): the registry is the source of truth for who
-- may log in to Mosquitto and what each login may do. smartcity/broker/ renders the broker's
-- password and ACL files from these tables and reloads the broker when they change.

-- Service accounts: one per platform process (ingest worker N, the API, a monitor, a gateway),
-- because the broker binds the client id to the login name. The reserved prefix keeps them apart
-- from device ids, whose ACL patterns (%u) apply to every login. The role's topic rights live in
-- code (smartcity/broker/roles.py), so the role is not constrained here.
CREATE TABLE broker_accounts (
    username      text PRIMARY KEY CHECK (username ~ '^smartcity-[a-z0-9][a-z0-9_-]{0,53}$'),
    role          text NOT NULL,
    password_hash text NOT NULL CHECK (password_hash LIKE '$7$%'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- A revoked device keeps its readings and its row, so its id stays taken: registering it again
-- is refused (DeviceExists, HTTP 409) and nobody inherits its history.
ALTER TABLE devices ADD COLUMN revoked_at timestamptz;

-- Device ids with the service prefix would share the service accounts' names. NOT VALID: rows
-- registered before this migration are not rechecked (the renderer leaves any such row out).
ALTER TABLE devices ADD CONSTRAINT devices_not_service_prefix
    CHECK (left(device_id, 10) <> 'smartcity-') NOT VALID;

-- A running sync (BrokerAuthSync) LISTENs here and re-renders within milliseconds. Devices notify
-- only on what the broker sees: ingest updates status and last_seen all the time, and those must
-- not wake it. PostgreSQL folds identical notifications of one transaction into one.
CREATE FUNCTION smartcity_notify_broker_auth() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('smartcity_broker_auth', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER devices_broker_auth_insert_delete
    AFTER INSERT OR DELETE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION smartcity_notify_broker_auth();

CREATE TRIGGER devices_broker_auth_update
    AFTER UPDATE OF mqtt_password_hash, revoked_at, device_id ON devices
    FOR EACH ROW
    WHEN (OLD.mqtt_password_hash IS DISTINCT FROM NEW.mqtt_password_hash
          OR OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.device_id IS DISTINCT FROM NEW.device_id)
    EXECUTE FUNCTION smartcity_notify_broker_auth();

CREATE TRIGGER broker_accounts_broker_auth
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON broker_accounts
    FOR EACH STATEMENT EXECUTE FUNCTION smartcity_notify_broker_auth();

-- TRUNCATE of devices (tests, a reset) changes the password file too.
CREATE TRIGGER devices_broker_auth_truncate
    AFTER TRUNCATE ON devices
    FOR EACH STATEMENT EXECUTE FUNCTION smartcity_notify_broker_auth();

-- Rights (README "Database roles"). The sync, `smartcity broker accounts` and `devices revoke` run
-- as the owner. The API reads whether a device is revoked; nobody else gets anything new. Grafana's
-- role (011) was granted the whole devices table, MQTT password hashes included: it keeps every
-- column but those, since no panel needs them and a read-only login is no place for them.
GRANT SELECT (revoked_at) ON devices TO smartcity_api;
REVOKE SELECT ON devices FROM smartcity_grafana;
GRANT SELECT (id, device_id, kind, site_id, latitude, longitude, mqtt_username, status,
              status_changed_at, last_seen, created_at, revoked_at) ON devices TO smartcity_grafana;
REVOKE ALL ON broker_accounts FROM smartcity_grafana, smartcity_ingest, smartcity_api;
