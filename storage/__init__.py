"""Where things are kept: snapshots (S3 or a local directory), plate history and its search, the audit log,
watchlists, and the console's incident workflow, camera health and accounts.

Storage only stores. It knows nothing of Kafka and emits no events: the
services that feed it from the bus live in ``services``, the console's bus
consumer in ``dispatch``, and the worker hands snapshots to a store directly.
The console's stores share one connection through :mod:`storage.db` (PostgreSQL, or SQLite on one box).
"""
