"""Alerts: rules over the readings, their evaluation, lifecycle, and notifications (README "Alerts")."""
