# The platform's Python services (ingest, API, simulator, CLI) for docker-compose.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY smartcity ./smartcity
COPY ingest ./ingest
COPY api ./api
COPY simulators ./simulators
COPY dashboards ./dashboards
# docker-compose.yml's health checks: the API's /api/v1/health, ingest's and the refresher's own
# metrics, the fleet's retained status. Per service there, not one HEALTHCHECK here: the image
# runs all of them.
COPY docker/healthcheck.py ./docker/healthcheck.py
RUN pip install --no-cache-dir -c requirements.lock . && useradd --system smartcity
# Compose's broker-auth service runs as uid 1883, the broker's user in eclipse-mosquitto, so that it
# may send the broker SIGHUP (same user) and the broker may read the 0600 files it writes. The
# folder is the mount point of their shared volume: a new volume takes its owner from here.
RUN groupadd --system --gid 1883 broker-auth \
    && useradd --system --uid 1883 --gid 1883 --no-create-home --home-dir /nonexistent broker-auth \
    && install -d -o 1883 -g 1883 -m 0700 /var/lib/smartcity/broker
USER smartcity
ENTRYPOINT ["smartcity"]
