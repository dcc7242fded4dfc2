"""Each read model's position in each source log, and its health.

A position moves only with a compare-and-set in the transaction that wrote the rows:
two workers running the same model cannot both apply a batch, and a crash between rows
and position is impossible (they commit together).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ordertrail.projections.store import Tx

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS projection_positions ("
    " projection {text} NOT NULL, source {text} NOT NULL, position {int} NOT NULL,"
    " PRIMARY KEY (projection, source))",
    "CREATE TABLE IF NOT EXISTS projection_health ("
    " projection {text} PRIMARY KEY, state {text} NOT NULL, failed_source {text},"
    " failed_position {int}, failed_topic {text}, error {text}, updated_at {text} NOT NULL)",
)


class PositionConflict(Exception):
    """Another worker moved this read model's position first; this batch is discarded."""


@dataclass(frozen=True)
class Health:
    state: str  # "ok", "failed" or "rebuilding"
    failed_source: str | None = None
    failed_position: int | None = None
    failed_topic: str | None = None
    error: str | None = None
    updated_at: str | None = None


def create(tx: Tx) -> None:
    for statement in SCHEMA:
        tx.ddl(statement)


def get(tx: Tx, projection: str, source: str) -> int:
    found = tx.scalar(
        "SELECT position FROM projection_positions WHERE projection = ? AND source = ?",
        (projection, source),
    )
    return int(found) if found is not None else 0


def all_positions(tx: Tx, projection: str) -> dict[str, int]:
    rows = tx.all(
        "SELECT source, position FROM projection_positions WHERE projection = ?",
        (projection,),
    )
    return {str(source): int(position) for source, position in rows}


def advance(tx: Tx, projection: str, source: str, expected: int, new: int) -> None:
    """Move from ``expected`` to ``new``, or raise ``PositionConflict``."""
    if expected == 0:
        changed = tx.count(
            "INSERT INTO projection_positions (projection, source, position) VALUES (?, ?, ?)"
            " ON CONFLICT (projection, source) DO UPDATE SET position = excluded.position"
            " WHERE projection_positions.position = 0",
            (projection, source, new),
        )
    else:
        changed = tx.count(
            "UPDATE projection_positions SET position = ?"
            " WHERE projection = ? AND source = ? AND position = ?",
            (new, projection, source, expected),
        )
    if changed != 1:
        raise PositionConflict(f"{projection} moved past {expected} in {source} meanwhile")


def reset(tx: Tx, projection: str) -> None:
    tx.execute("DELETE FROM projection_positions WHERE projection = ?", (projection,))


def set_health(tx: Tx, projection: str, health: Health) -> None:
    tx.execute(
        "INSERT INTO projection_health (projection, state, failed_source, failed_position,"
        " failed_topic, error, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (projection) DO UPDATE SET state = excluded.state,"
        " failed_source = excluded.failed_source, failed_position = excluded.failed_position,"
        " failed_topic = excluded.failed_topic, error = excluded.error,"
        " updated_at = excluded.updated_at",
        (
            projection,
            health.state,
            health.failed_source,
            health.failed_position,
            health.failed_topic,
            health.error,
            datetime.now(UTC).isoformat(),
        ),
    )


def get_health(tx: Tx, projection: str) -> Health:
    row = tx.one(
        "SELECT state, failed_source, failed_position, failed_topic, error, updated_at"
        " FROM projection_health WHERE projection = ?",
        (projection,),
    )
    if row is None:
        return Health("ok")
    return Health(*row)
