"""Simulated devices that stand in for hardware: numpy models per kind, fleets, MQTT publishing."""
