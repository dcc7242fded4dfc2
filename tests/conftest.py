"""Test harness: a throwaway PostgreSQL cluster (unless ``ORDERTRAIL_TEST_POSTGRES_URL``
names a server to use instead) and stores on SQLite and PostgreSQL for every test that
asks for ``backend``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from psycopg import sql

from ordertrail.adapters.bootstrap import open_ordertrail
from ordertrail.adapters.devdb import start_cluster
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Config, Ordertrail
from tests.support.clock import FakeClock

settings.register_profile("default", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "ci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """A PostgreSQL server URL (a database the tests may create schemas in)."""
    given = os.environ.get("ORDERTRAIL_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    cluster = start_cluster()
    try:
        yield cluster.url()
    finally:
        cluster.stop()


@pytest.fixture
def postgres_schema_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty schema for one test, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    base = postgres_server_url.split("?", 1)[0]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield f"{base}?schema={schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def store_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'store'}"
    if backend == "memory":
        return "memory:"
    return str(request.getfixturevalue("postgres_schema_url"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
    return str(request.param)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store_settings(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    return Settings(database_url=store_url(backend, tmp_path, request), config=Config())


@pytest.fixture
def make_ot(store_settings: Settings, clock: FakeClock) -> Iterator[Callable[..., Ordertrail]]:
    """Opens the test's store with a given business config (all on one store)."""
    opened: list[Ordertrail] = []

    def make(config: Config | None = None) -> Ordertrail:
        chosen = replace(store_settings, config=config or store_settings.config)
        system = open_ordertrail(chosen, clock=clock)
        opened.append(system)
        return system

    yield make
    for system in opened:
        system.close()


@pytest.fixture
def ot(make_ot: Callable[..., Ordertrail]) -> Ordertrail:
    return make_ot()
