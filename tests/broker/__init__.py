"""Broker identity: accounts, ACL files, the sync, and a real Mosquitto enforcing them."""
