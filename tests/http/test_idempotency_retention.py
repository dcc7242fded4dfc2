"""Idempotency keys are kept for a retention period, then purged; a retry that comes
after the purge still gets the original order, because the command id derives from the
caller and the key and the domain's receipt answers it (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ordertrail.adapters.http.config import ApiSettings
from ordertrail.adapters.settings import SettingsError
from tests.http.conftest import Api
from tests.http.test_logistics_api import ADDRESS, stocked_product


def order_request(api: Api, key: str) -> Any:
    return api.client.post(
        "/orders",
        json={
            "lines": [{"sku": "TEA-1", "quantity": 1, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": "card", "amount": {"amount": 2500, "currency": "CNY"}}],
        },
        headers={**api.customer(), "Idempotency-Key": key},
    )


def test_keys_older_than_the_retention_are_purged(api: Api) -> None:
    stocked_product(api, "TEA-1", price=2500, stock=10)
    assert order_request(api, "old-key").status_code == 201
    runtime = api.runtime
    now = datetime.now(UTC)
    assert runtime.purge_idempotency_keys(now) == 0  # within the 24 h
    later = now + timedelta(hours=runtime.settings.idempotency_retention_hours, minutes=1)
    assert order_request(api, "new-key").status_code == 201
    assert runtime.idempotency.purge(now - timedelta(seconds=1)) == 0
    assert runtime.idempotency.purge(now + timedelta(seconds=30)) == 2
    assert runtime.purge_idempotency_keys(later) == 0  # nothing left


def test_a_retry_after_the_purge_is_still_the_same_order(api: Api) -> None:
    stocked_product(api, "TEA-1", price=2500, stock=10)
    first = order_request(api, "retry-key")
    assert first.status_code == 201
    later = datetime.now(UTC) + timedelta(days=2)
    assert api.runtime.purge_idempotency_keys(later) == 1
    again = order_request(api, "retry-key")
    assert again.status_code in (200, 201), again.text
    assert again.json()["order_id"] == first.json()["order_id"]
    level = api.client.get("/inventory/TEA-1", headers=api.staff()).json()
    assert level["reserved"] == 1  # one order, not two


@pytest.mark.parametrize("raw", ["0", "-3", "soon"])
def test_a_retention_below_an_hour_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError):
        ApiSettings.from_env({"ORDERTRAIL_IDEMPOTENCY_RETENTION_HOURS": raw})
