"""Tamper-evident event logs: every stored event is chained by hash to the one before it
(``docs/audit.md``).

- ``chain``: the link hash and the verifier (pure, standard library only);
- ``recorders``: SQLite and PostgreSQL application recorders that write the chain in the
  events' own transaction (``Settings.eventsourcing_env`` selects them, with
  ``APPLICATION_RECORDER_TOPIC``);
- ``verify``: verify a log, or every log of a deployment, from the database;
- ``checkpoints``: Ed25519 keys and signed checkpoints of a log's head;
- ``export``: JSON Lines exports of a time range of a log, or of an order's events;
- ``offline``: verify an export without the database (standard library + cryptography);
- ``commands``: the ``ordertrail audit`` command line.

This package module imports nothing, so that ``offline`` stays standalone.
"""

SQLITE_RECORDER_TOPIC = "ordertrail.adapters.audit.recorders:ChainedSQLiteApplicationRecorder"
POSTGRES_RECORDER_TOPIC = "ordertrail.adapters.audit.recorders:ChainedPostgresApplicationRecorder"
