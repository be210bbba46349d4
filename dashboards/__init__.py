"""Grafana dashboards as code (``dashboards.build`` writes ``json/``); provisioning for docker-compose."""
