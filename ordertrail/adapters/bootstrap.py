"""The composition root: settings in, a wired ``Ordertrail`` out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import psycopg
from psycopg import sql

from ordertrail.adapters.carriers import carrier_directory, load_rules
from ordertrail.adapters.settings import Settings
from ordertrail.adapters.writer_lock import placement_writer_lock
from ordertrail.application.context import Clock, system_clock
from ordertrail.application.processes import StockReleaser
from ordertrail.application.system import Ordertrail

#: The advisory lock under which a process creates the tables it needs.
SETUP_LOCK = 0x6F72_6474_7261_696C  # "ordtrail"


@contextmanager
def setup_lock(settings: Settings) -> Iterator[None]:
    """Serialise table creation across processes on PostgreSQL.

    Several processes starting at once (API workers, the projection runner) would run the
    same ``CREATE TABLE IF NOT EXISTS`` concurrently, which PostgreSQL can fail with
    "tuple concurrently updated"; one at a time they all succeed.
    """
    if settings.backend != "postgres":
        yield
        return
    with psycopg.connect(settings.postgres().conninfo(), autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (SETUP_LOCK,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))


def prepare_store(settings: Settings) -> None:
    """Create what the store needs before any application opens it (the schema)."""
    if settings.backend != "postgres":
        return
    target = settings.postgres()
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(target.schema))
        )


def open_ordertrail(
    settings: Settings | None = None, *, clock: Clock = system_clock, create_tables: bool = True
) -> Ordertrail:
    """Open every context on the store the settings name (the environment by default)."""
    chosen = settings or Settings.from_env()
    with setup_lock(chosen) if create_tables else nullcontext():
        if create_tables:
            prepare_store(chosen)
        ot = Ordertrail(
            chosen.eventsourcing_env(create_tables=create_tables),
            chosen.config,
            clock=clock,
            carriers=carrier_directory(
                kuaidi100_salt=chosen.kuaidi100_salt, parcelhub_secret=chosen.parcelhub_secret
            ),
            carrier_rules=load_rules(chosen.carrier_rules),
        )
    share_placement_lock(ot, chosen)
    return ot


def share_placement_lock(ot: Ordertrail, settings: Settings) -> None:
    """The stock releaser takes turns with the placement writers (PostgreSQL), on a
    connection of its own, opened when first needed and closed with ``ot``."""
    lock = placement_writer_lock(settings)
    if lock is None:
        return
    for follower in ot.followers:
        if isinstance(follower, StockReleaser):
            follower.writer_lock = lock
    ot.on_close.append(lock.close)
