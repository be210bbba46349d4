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
USER smartcity
ENTRYPOINT ["smartcity"]
