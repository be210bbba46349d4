"""Grafana dashboards as code (built in a later issue); provisioning for docker-compose."""
