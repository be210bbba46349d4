#!/bin/sh
# Create or update the platform's broker service accounts (README "Broker identity and ACLs"), one
# per process, each with a password the deployment keeps:
#   smartcity-ingest-1   role ingest   password in PASER_MQTT_INGEST_PASSWORD   (the ingest worker)
#   smartcity-api-1      role api      password in PASER_MQTT_API_PASSWORD      (the API's broker client)
#   smartcity-monitor-1  role monitor  password in PASER_MQTT_MONITOR_PASSWORD  (health checks)
#   smartcity-alerts-1   role alerts   password in PASER_MQTT_ALERTS_PASSWORD   (the alert evaluator)
# Run by compose's one-shot `broker-accounts` service after the migrations, on every start: an
# unchanged account stays as it is (the broker files are not touched), a changed password takes
# effect at once. The passwords are read from the environment, never put on a command line.
# The registry's database is SMARTCITY_DATABASE_URL (the owner: only it touches broker_accounts).
set -eu
: "${PASER_MQTT_INGEST_PASSWORD:?set PASER_MQTT_INGEST_PASSWORD}"
: "${PASER_MQTT_API_PASSWORD:?set PASER_MQTT_API_PASSWORD}"
: "${PASER_MQTT_MONITOR_PASSWORD:?set PASER_MQTT_MONITOR_PASSWORD}"
: "${PASER_MQTT_ALERTS_PASSWORD:?set PASER_MQTT_ALERTS_PASSWORD}"

smartcity broker accounts add smartcity-ingest-1 --role ingest --password-env PASER_MQTT_INGEST_PASSWORD
smartcity broker accounts add smartcity-api-1 --role api --password-env PASER_MQTT_API_PASSWORD
smartcity broker accounts add smartcity-monitor-1 --role monitor --password-env PASER_MQTT_MONITOR_PASSWORD
smartcity broker accounts add smartcity-alerts-1 --role alerts --password-env PASER_MQTT_ALERTS_PASSWORD
