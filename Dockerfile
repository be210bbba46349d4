# The platform's Python services (ingest, API, simulator, CLI) for docker-compose.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml requirements.lock README.md ./
COPY smartcity ./smartcity
COPY ingest ./ingest
COPY api ./api
COPY simulators ./simulators
COPY dashboards ./dashboards
RUN pip install --no-cache-dir -c requirements.lock . && useradd --system smartcity
USER smartcity
ENTRYPOINT ["smartcity"]
