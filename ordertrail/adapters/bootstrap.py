"""The composition root: settings in, a wired ``Ordertrail`` out."""

from __future__ import annotations

import psycopg
from psycopg import sql

from ordertrail.adapters.carriers import carrier_directory, load_rules
from ordertrail.adapters.settings import Settings
from ordertrail.application.context import Clock, system_clock
from ordertrail.application.system import Ordertrail


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
    if create_tables:
        prepare_store(chosen)
    return Ordertrail(
        chosen.eventsourcing_env(create_tables=create_tables),
        chosen.config,
        clock=clock,
        carriers=carrier_directory(
            kuaidi100_salt=chosen.kuaidi100_salt, parcelhub_secret=chosen.parcelhub_secret
        ),
        carrier_rules=load_rules(chosen.carrier_rules),
    )
