#!/usr/bin/env bash
# Install the system pieces the smartcity platform needs on Debian 12 / 13:
# Mosquitto (broker + clients) and PostgreSQL with the TimescaleDB extension.
# Idempotent: a second run checks what is there, installs nothing and exits fast.
# It starts no services: the platform and the tests run their own private
# Mosquitto and PostgreSQL instances, so anything a package install starts is stopped.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
PRIV=${SMARTCITY_APT_CACHE:-/var/cache/smartcity-apt}   # private apt state, outside the repo
APT_UPDATED=0

say() { echo "install-system: $*"; }

# Only re-run as root when something actually has to change, so an
# unprivileged second run on a ready machine still works without sudo.
need_root() {
  [ "$(id -u)" -eq 0 ] && return 0
  command -v sudo >/dev/null || { say "root needed for: $1 (no sudo)"; exit 1; }
  say "re-running with sudo for: $1"
  exec sudo -E bash "$0"
}

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]; }

apt_update_once() {
  [ "$APT_UPDATED" -eq 1 ] && return 0
  say "apt-get update"; apt-get update -qq; APT_UPDATED=1
}

apt_install() {   # installs only the missing packages among "$@"
  local missing=() p
  for p in "$@"; do installed "$p" || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_root "apt-get install ${missing[*]}"
  apt_update_once
  say "apt-get install ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

has_candidate() {  # apt knows an installable version of package $1
  local c; c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/{print $2}')
  [ -n "$c" ] && [ "$c" != "(none)" ]
}

tsdb_ready() {    # TimescaleDB present for PostgreSQL major $1 (Debian layout)
  [ -x "/usr/lib/postgresql/$1/bin/postgres" ] &&
    [ -f "/usr/lib/postgresql/$1/lib/timescaledb.so" ] &&
    [ -f "/usr/share/postgresql/$1/extension/timescaledb.control" ]
}

# --- 1. Mosquitto --------------------------------------------------------------------
if ! installed mosquitto; then
  apt_install mosquitto mosquitto-clients
  # The Debian package starts a system broker on 1883, the port our private broker uses:
  # stop it and keep it from starting at boot.
  if [ -d /run/systemd/system ]; then
    systemctl disable --now mosquitto >/dev/null 2>&1 && say "stopped+disabled system mosquitto (systemd)"
  else
    if pgrep -x mosquitto >/dev/null; then service mosquitto stop >/dev/null && say "stopped system mosquitto"; fi
    update-rc.d mosquitto disable >/dev/null 2>&1 && say "disabled system mosquitto at boot"
  fi
fi
apt_install mosquitto-clients

# The virtualenv needs ensurepip, which Debian's own python3 ships separately.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then apt_install python3-venv; fi

# --- 2. PostgreSQL major with TimescaleDB ---------------------------------------------
PGMAJOR=""
for m in 17 16 15; do tsdb_ready "$m" && { PGMAJOR=$m; break; }; done

if [ -z "$PGMAJOR" ]; then
  # apt-cache needs package lists; a fresh image may have none yet.
  compgen -G "/var/lib/apt/lists/*_Packages*" >/dev/null || { need_root "apt-get update"; apt_update_once; }
  for m in 17 16 15; do has_candidate "postgresql-$m-timescaledb" && { PGMAJOR=$m; break; }; done
  if [ -n "$PGMAJOR" ]; then
    # Packaged (Debian 13: postgresql-17-timescaledb). Installing the server creates and
    # starts a "main" cluster: remember which clusters existed so we only stop new ones.
    before=$(ls -d /etc/postgresql/*/* 2>/dev/null || true)
    apt_install "postgresql-$PGMAJOR" "postgresql-$PGMAJOR-timescaledb"
    for conf in /etc/postgresql/*/*; do
      [ -d "$conf" ] || continue
      grep -qxF "$conf" <<<"$before" && continue
      ver=$(basename "$(dirname "$conf")"); name=$(basename "$conf")
      pg_ctlcluster "$ver" "$name" stop 2>/dev/null && say "stopped cluster $ver/$name created by the install"
      echo manual >"$conf/start.conf" && say "set cluster $ver/$name to start manually"
    done
  else
    # Debian 12: no package. Build Debian's own (Apache-2 edition) source package from
    # trixie against the installed server, using a private apt config so the system's
    # sources stay untouched.
    PGMAJOR=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sed -E 's#.*/postgresql/([0-9]+)/.*#\1#' | sort -n | tail -1)
    [ -n "$PGMAJOR" ] || { say "no PostgreSQL server installed and no timescaledb package"; exit 1; }
    need_root "build timescaledb for PostgreSQL $PGMAJOR"
    # libssl-dev: timescaledb links OpenSSL when the server was built with it (Debian's is).
    apt_install cmake build-essential dpkg-dev libssl-dev "postgresql-server-dev-$PGMAJOR"

    # Same mirror as the machine already uses (first http(s) URI ending in /debian).
    mirror=$( { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's/^URIs://' | tr ' ' '\n'
                grep -hE '^deb(-src)?\s' /etc/apt/sources.list 2>/dev/null | sed -E 's/\[[^]]*\]//' | awk '{print $2}'
              } | grep -E '^https?://.*/debian/?$' | head -1 | sed 's#/$##' || true)
    mirror=${mirror:-http://deb.debian.org/debian}
    mkdir -p "$PRIV/lists/partial" "$PRIV/cache/archives/partial" "$PRIV/src"
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" >"$PRIV/sources.list"
    # Own lists and cache dirs too: otherwise apt rewrites the system's pkgcache with trixie data.
    # Sandbox::User=root: _apt cannot write into the root-owned private dirs.
    APTO=(-o "Dir::Etc::SourceList=$PRIV/sources.list" -o Dir::Etc::SourceParts=/dev/null
          -o "Dir::State::Lists=$PRIV/lists" -o "Dir::Cache=$PRIV/cache" -o APT::Sandbox::User=root)
    say "fetching timescaledb source from $mirror trixie"
    apt-get "${APTO[@]}" update -qq
    rm -rf "$PRIV/src" && mkdir -p "$PRIV/src"
    (cd "$PRIV/src" && apt-get "${APTO[@]}" source --download-only -qq timescaledb >/dev/null)
    # No debian-keyring here to check the uploader signature; apt already verified the
    # file hashes against the signed trixie Release file.
    (cd "$PRIV/src" && dpkg-source -x --no-check ./*.dsc tsdb >/dev/null)

    say "building timescaledb for PostgreSQL $PGMAJOR"
    b="$PRIV/src/tsdb/build"
    # Flags follow Debian's debian/rules; tests are off (they need a PostgreSQL source tree).
    cmake -S "$PRIV/src/tsdb" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DPG_CONFIG="/usr/lib/postgresql/$PGMAJOR/bin/pg_config" -DAPACHE_ONLY=1 \
      -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DSEND_TELEMETRY_DEFAULT=OFF -DUSE_TELEMETRY=OFF \
      -DWARNINGS_AS_ERRORS=OFF >"$PRIV/build.log" 2>&1 &&
    make -C "$b" -j"$(nproc)" >>"$PRIV/build.log" 2>&1 &&
    make -C "$b" install >>"$PRIV/build.log" 2>&1 ||
      { tail -40 "$PRIV/build.log"; say "timescaledb build failed, log: $PRIV/build.log"; exit 1; }
    rm -rf "$b"
  fi
  tsdb_ready "$PGMAJOR" || { say "timescaledb missing for PostgreSQL $PGMAJOR after install"; exit 1; }
fi

ver=$(sed -nE "s/^default_version *= *'([^']+)'.*/\1/p" "/usr/share/postgresql/$PGMAJOR/extension/timescaledb.control")
echo "postgresql major: $PGMAJOR, bin: /usr/lib/postgresql/$PGMAJOR/bin, timescaledb: $ver"
