"""A store that cannot be reached (PostgreSQL restarting, a pool exhausted) is answered
with 503 and Retry-After — a problem the client can retry — not a 500 (SQLite and
PostgreSQL; the outage is simulated by making the store's read fail the way the
drivers do)."""

from __future__ import annotations

from typing import Any

import eventsourcing.persistence
import psycopg
import pytest

from tests.http.conftest import Api
from tests.http.test_logistics_api import stocked_product


def driver_error() -> BaseException:
    return psycopg.OperationalError("server closed the connection unexpectedly")


def library_error() -> BaseException:
    # eventsourcing wraps the driver's error in its own
    try:
        raise driver_error()
    except psycopg.OperationalError as cause:
        error = eventsourcing.persistence.OperationalError(str(cause))
        error.__cause__ = cause
        return error


@pytest.mark.parametrize("make", [driver_error, library_error], ids=["psycopg", "eventsourcing"])
def test_an_unreachable_store_is_a_503_with_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch, make: Any
) -> None:
    stocked_product(api, "TEA-1", price=100, stock=3)

    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise make()

    monkeypatch.setattr(api.runtime.ot.inventory, "stock_level", unreachable)
    r = api.client.get("/inventory/TEA-1", headers=api.staff())
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "1"
    assert r.json()["code"] == "store.unavailable"
    monkeypatch.undo()
    assert api.client.get("/inventory/TEA-1", headers=api.staff()).status_code == 200


def test_other_unexpected_errors_are_still_500(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    stocked_product(api, "TEA-1", price=100, stock=3)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api.runtime.ot.inventory, "stock_level", broken)
    r = api.client.get("/inventory/TEA-1", headers=api.staff())
    assert r.status_code == 500
    assert r.json()["code"] == "http.internal_error"
