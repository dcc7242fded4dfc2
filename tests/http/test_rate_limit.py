"""Order placement's rate limit (``CountingRateLimitMiddleware``): a fixed window per
client with Litestar's headers and 429, whose stored state stays one count however many
requests the client makes, so a request costs the same at the end of a busy minute as
at its start."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from ordertrail.adapters.http import rate_limit
from ordertrail.adapters.http.app import create_app
from ordertrail.adapters.settings import Settings
from tests.http.conftest import Api, api_settings
from tests.http.test_end_to_end import ADDRESS, stocked_product
from tests.support.clock import FakeClock

LIMIT = 3


@pytest.fixture
def limited(store_settings: Settings, clock: FakeClock) -> Iterator[Api]:
    app = create_app(api_settings(store_settings, orders_per_minute=LIMIT), clock=clock)
    with TestClient(app=app, raise_server_exceptions=False) as client:
        yield Api(client)


class Now:
    """The limiter's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.value = 1_800_000_000.0

    def __call__(self) -> float:
        return self.value


def order(api: Api, customer: str = "li-lei") -> Any:
    return api.client.post(
        "/orders",
        json={
            "lines": [{"sku": "TEA-1", "quantity": 1, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": "alipay", "amount": {"amount": 1000, "currency": "CNY"}}],
        },
        headers=api.customer(customer),
    )


def stored(api: Api, customer: str = "li-lei") -> bytes:
    store = api.client.app.stores.get("rate_limit")
    with api.client.portal() as portal:
        found = portal.call(store.get, f"CountingRateLimitMiddleware::customer:{customer}")
    assert isinstance(found, bytes), found
    return found


def test_a_window_counts_requests_and_resets(limited: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    api = limited
    now = Now()
    monkeypatch.setattr(rate_limit, "time", now)
    stocked_product(api, "TEA-1", price=1000, stock=100)
    remaining = []
    for second in range(LIMIT):
        r = order(api)
        assert r.status_code == 201, r.text
        assert r.headers["ratelimit-policy"] == f"{LIMIT}; w=60"
        assert r.headers["ratelimit-limit"] == str(LIMIT)
        assert r.headers["ratelimit-reset"] == str(60 - second)
        remaining.append(int(r.headers["ratelimit-remaining"]))
        now.value += 1
    assert remaining == [2, 1, 0]
    refused = order(api)
    assert refused.status_code == 429, refused.text
    assert refused.headers["ratelimit-remaining"] == "0"
    assert int(refused.headers["retry-after"]) == 57  # the window opened 3 s ago
    assert stored(api) == b"3 1800000060"  # a refusal is not counted
    now.value += 57
    again = order(api)
    assert again.status_code == 201, again.text
    assert again.headers["ratelimit-remaining"] == str(LIMIT - 1)
    assert stored(api) == b"1 1800000120"


def test_what_is_stored_does_not_grow_with_the_requests(
    store_settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limit, "time", Now())
    app = create_app(api_settings(store_settings, orders_per_minute=1_000), clock=clock)
    with TestClient(app=app, raise_server_exceptions=False) as client:
        api = Api(client)
        stocked_product(api, "TEA-1", price=1000, stock=100)
        for n in range(40):
            assert order(api).status_code == 201
            assert stored(api) == f"{n + 1} 1800000060".encode()
        # Clients are counted apart.
        assert order(api, "han-mei").headers["ratelimit-remaining"] == "999"
