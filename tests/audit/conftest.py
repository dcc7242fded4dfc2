"""Fixtures of the audit tests: the history is written once per backend and test process,
then copied into each test's own store, which the test may then tamper with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ordertrail.adapters.read_models import ReadSide, read_store
from ordertrail.adapters.settings import Settings
from ordertrail.application.system import Ordertrail
from ordertrail.projections.store import ReadStore
from tests.audit import History, Templates, clone_store
from tests.audit.history_support import Shop, busy_shop
from tests.support.clock import FakeClock


@pytest.fixture(scope="session")
def audit_templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Templates]:
    templates = Templates(tmp_path_factory.mktemp("audit-templates"))
    yield templates
    templates.drop()


@pytest.fixture
def seeded_history(
    store_settings: Settings,
    audit_templates: Templates,
    clock: FakeClock,
    request: pytest.FixtureRequest,
) -> History:
    """The test's store, holding a copy of the shop's afternoon (``write_history``); the
    test's clock goes on from where the history's stopped."""
    backend = store_settings.backend
    server = str(request.getfixturevalue("postgres_server_url")) if backend == "postgres" else ""
    template, history, stopped = audit_templates.get(backend, server)
    clone_store(template, store_settings)
    clock.now = max(clock.now, stopped)
    return history


@pytest.fixture
def store(store_settings: Settings) -> Iterator[ReadStore]:
    """The read store of the test's backend (the live read models)."""
    opened = read_store(store_settings)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def shop(ot: Ordertrail, clock: FakeClock, store: ReadStore) -> Shop:
    """A busy shop's history, with the audit index caught up."""
    built = busy_shop(ot, clock)
    ReadSide.open(ot, store, ["audit_index"]).run_until_idle()
    return built
