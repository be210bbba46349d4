#!/bin/sh
# The compose broker's entrypoint: writes the password file from MQTT_USER / MQTT_PASSWORD at every
# start (a changed password takes effect on restart), then runs Mosquitto. One service account for
# ingest, the API and the simulator fleet; issue 11 gives each device and service its own.
set -eu
: "${MQTT_PASSWORD:?set MQTT_PASSWORD (compose: PASER_MQTT_PASSWORD)}"
MQTT_USER="${MQTT_USER:-smartcity}"
PASSWORDS="${MQTT_PASSWORD_FILE:-/mosquitto/data/passwords}"  # the path docker/mosquitto.conf names

umask 077
rm -f "$PASSWORDS"
# Hashed (PBKDF2-SHA512) by Mosquitto's own tool; the file is readable by the broker's user only.
mosquitto_passwd -c -b "$PASSWORDS" "$MQTT_USER" "$MQTT_PASSWORD"
# The image's broker drops from root to its mosquitto user, which must read the file and write its
# persistence (the image's own entrypoint, replaced by this one, chowned /mosquitto for that).
if id mosquitto > /dev/null 2>&1; then chown mosquitto:mosquitto "$PASSWORDS"; fi
if [ "$(id -u)" = 0 ] && [ -d /mosquitto/data ] && id mosquitto > /dev/null 2>&1; then
    chown -R mosquitto:mosquitto /mosquitto/data
fi
exec "$@"
