"""True concurrency over real HTTP (uvicorn on a port, many client threads): requests that
share an Idempotency-Key do the work once, and a hot SKU is never oversold."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from ordertrail.adapters.settings import Settings
from tests.http.live import LiveService
from tests.http.test_logistics_api import ADDRESS


@pytest.fixture
def live(store_settings: Settings) -> Iterator[LiveService]:
    service = LiveService(store_settings, run_workers=False)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def order_body(sku: str, quantity: int, price: int) -> bytes:
    return json.dumps(
        {
            "lines": [{"sku": sku, "quantity": quantity, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [
                {"method": "alipay", "amount": {"amount": price * quantity, "currency": "CNY"}}
            ],
        }
    ).encode()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def all_at_once(count: int, work: Any) -> list[Any]:
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(i: int) -> None:
        start.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_concurrent_requests_with_one_key_place_one_order(live: LiveService) -> None:
    ot = live.runtime.ot
    before = ot.inventory.stock_level("CUP-CELADON").reserved  # seeded by the demo catalog
    auth = {"Authorization": f"Bearer {live.tokens['customer']}", "Idempotency-Key": "same-1"}
    results = all_at_once(
        6, lambda _: post(f"{live.base_url}/orders", order_body("CUP-CELADON", 2, 4500), auth)
    )
    statuses = {status for status, _ in results}
    assert statuses == {201}, results
    assert len({body["order_id"] for _, body in results}) == 1
    assert ot.inventory.stock_level("CUP-CELADON").reserved == before + 2


def test_concurrent_buyers_never_oversell_a_hot_sku(live: LiveService) -> None:
    ot = live.runtime.ot
    available = ot.inventory.stock_level("GIFT-BOX").available  # 3 in the demo catalog
    buyers = 10
    results = all_at_once(
        buyers,
        lambda i: post(
            f"{live.base_url}/orders",
            order_body("GIFT-BOX", 1, 2000),
            {
                "Authorization": f"Bearer {live.tokens['customer']}",
                "Idempotency-Key": f"buyer-{i}",
            },
        ),
    )
    sold = [body for status, body in results if status == 201]
    refused = [body for status, body in results if status == 409]
    assert len(sold) == available, results
    assert len(refused) == buyers - available, results
    assert {body["code"] for body in refused} == {"inventory.insufficient_stock"}
    stock = ot.inventory.stock_level("GIFT-BOX")
    assert (stock.reserved, stock.available) == (available, 0)
