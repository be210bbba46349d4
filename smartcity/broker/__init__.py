"""Broker identity: who may log in to Mosquitto and what each login may do, kept from the registry.

The registry (``devices`` and ``broker_accounts``) is the source of truth. ``authfiles`` renders
Mosquitto's password file and ACL file from it, ``sync`` rewrites them when the registry changes
and reloads the broker (SIGHUP). ``roles`` is the one table of the service accounts' topic rights,
``accounts`` creates, rotates and revokes service accounts and revokes devices.
"""
