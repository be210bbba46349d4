"""Private PostgreSQL (with TimescaleDB preloaded) and Mosquitto processes, for `up` and for tests.

Both run from the installed binaries in a directory of their own, listen on loopback only, and
keep their data there across restarts. Neither runs as root: when we are root the cluster belongs
to the ``postgres`` system user (its commands run through ``runuser``) and the broker drops to the
``mosquitto`` user; where that user cannot enter the data directory, the server's files live under
/var/lib/smartcity (see ``ServerHome``). Mosquitto's settings come from the shared
``smartcity/mosquitto.conf``.
"""

from smartcity.services.home import SHARED_CLUSTER_ROOT, ServerHome
from smartcity.services.mosquitto import (
    MOSQUITTO_USER,
    EmbeddedMosquitto,
    MosquittoTls,
    find_mosquitto,
    mosquitto_base_config,
    mosquitto_tls,
)
from smartcity.services.postgres import (
    POSTGRES_ROOT,
    EmbeddedPostgres,
    embedded_postgres_url,
    find_postgres_bin_dir,
)
from smartcity.services.process import ServiceError, free_port, port_is_open, run_command, wait_for_port

__all__ = [
    "MOSQUITTO_USER",
    "POSTGRES_ROOT",
    "SHARED_CLUSTER_ROOT",
    "EmbeddedMosquitto",
    "EmbeddedPostgres",
    "MosquittoTls",
    "ServerHome",
    "ServiceError",
    "embedded_postgres_url",
    "find_mosquitto",
    "find_postgres_bin_dir",
    "free_port",
    "mosquitto_base_config",
    "mosquitto_tls",
    "port_is_open",
    "run_command",
    "wait_for_port",
]
