"""Whole stories through HTTP only, as a storefront, a back office, a payment provider and
a carrier would tell them: place → pay (signed provider callback) → ship → deliver
(signed carrier webhook) → return → refund, and cash on delivery. Between requests the
test only lets the process managers and projection workers catch up (``settle``), as the
service's own background threads would. Also the surge guards: 429 and 413."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from ordertrail.adapters.http.app import create_app
from ordertrail.adapters.settings import Settings
from tests.http.conftest import Api, api_settings
from tests.http.test_logistics_api import (
    ADDRESS,
    heads,
    parcelhub_event,
    parcelhub_webhook,
    problem,
    shipped,
    stocked_product,
)
from tests.http.test_payments_api import generic_event, post_generic
from tests.support.clock import FakeClock

AT = datetime.fromisoformat("2026-11-11T10:00:00+08:00")


def place(api: Api, sku: str, quantity: int, total: int, method: str, key: str) -> Any:
    r = api.client.post(
        "/orders",
        json={
            "lines": [{"sku": sku, "quantity": quantity, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": method, "amount": {"amount": total, "currency": "CNY"}}],
        },
        headers={**api.customer(), "Idempotency-Key": key},
    )
    assert r.status_code == 201, r.text
    return r.json()


def tracking(api: Api, order_id: str) -> dict[str, Any]:
    api.settle()
    r = api.client.get(f"/orders/{order_id}/tracking", headers=api.customer())
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_place_pay_ship_deliver_return_refund_over_http(api: Api) -> None:
    stocked_product(api, "TEA-1", price=2500, stock=10)
    order = place(api, "TEA-1", 2, 5000, "card", "e2e-place-1")
    order_id = order["order_id"]
    payment_id = order["payments"][0]["payment_id"]
    assert api.client.get("/inventory/TEA-1", headers=api.staff()).json()["reserved"] == 2

    # The storefront asks how to pay; the provider calls back, signed.
    r = api.client.post(
        f"/orders/{order_id}/payments/{payment_id}/checkout", headers=api.customer()
    )
    assert r.status_code == 200, r.text
    r = post_generic(api, generic_event(order_id, payment_id, "payment.captured", 5000))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "recorded"
    assert tracking(api, order_id)["status"] == "ready_to_ship"

    # Staff ship it; the carrier reports pickup and delivery by signed webhook.
    parcel = shipped(api, order_id, (1, 2))
    number = parcel["tracking_number"]
    r = parcelhub_webhook(
        api,
        {
            "events": [
                parcelhub_event(number, "PICKED_UP", AT),
                parcelhub_event(number, "IN_TRANSIT", AT + timedelta(hours=3)),
                parcelhub_event(number, "DELIVERED", AT + timedelta(hours=20)),
            ]
        },
    )
    assert r.status_code == 200, r.text
    seen = tracking(api, order_id)
    assert seen["status"] == "delivered"
    assert [p["tracking_number"] for p in seen["parcels"]] == [number]
    assert api.client.get("/inventory/TEA-1", headers=api.staff()).json()["on_hand"] == 8

    # The customer returns one tin; staff approve, receive and inspect it.
    r = api.client.post(
        f"/orders/{order_id}/cases",
        json={
            "kind": "return",
            "reason": "quality_problem",
            "lines": [{"line_no": 1, "quantity": 1}],
            "photo_urls": ["https://img.example.com/cases/dent.jpg"],
            "description": "One tin is dented.",
        },
        headers=api.customer(),
    )
    assert r.status_code == 201, r.text
    case = r.json()
    for action, body in (
        ("approve", {"note": "photo shows the dent"}),
        ("receive", {"received_at": "2026-11-14T09:30:00+08:00", "tracking_number": "SF99"}),
        ("inspect", {"results": [{"line_no": 1, "accepted": 1, "rejected": 0, "note": "ok"}]}),
    ):
        r = api.client.post(
            f"/cases/{case['case_id']}/{action}",
            json=body,
            headers={**api.staff(), "If-Match": f'"{case["version"]}"'},
        )
        assert r.status_code == 200, r.text
        case = r.json()
    assert case["refundable"] == {"amount": 2500, "currency": "CNY"}

    # The process managers refund the accepted return and restock it, once.
    seen = tracking(api, order_id)
    assert seen["amounts"]["refunded"] == 2500
    assert api.client.get("/inventory/TEA-1", headers=api.staff()).json()["on_hand"] == 9
    kinds = [entry["kind"] for entry in seen["timeline"]]
    for expected in ("placed", "delivered", "requested", "inspected", "paymentrefunded"):
        assert any(expected in kind.lower() for kind in kinds), kinds
    board = api.client.get("/dashboard?granularity=day", headers=api.staff()).json()
    assert sum(bucket["refunded"]["amount"] for bucket in board["buckets"]) == 2500
    assert sum(bucket["refunds"] for bucket in board["buckets"]) == 1

    # A retried placement (same Idempotency-Key) is the same order, not a second one.
    again = api.client.post(
        "/orders",
        json={
            "lines": [{"sku": "TEA-1", "quantity": 2, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": "card", "amount": {"amount": 5000, "currency": "CNY"}}],
        },
        headers={**api.customer(), "Idempotency-Key": "e2e-place-1"},
    )
    assert again.json()["order_id"] == order_id
    assert again.headers["idempotent-replayed"] == "true"


def test_cash_on_delivery_over_http(api: Api) -> None:
    stocked_product(api, "CUP-1", price=1500, stock=5)
    order = place(api, "CUP-1", 2, 3000, "cash_on_delivery", "e2e-cod-1")
    order_id = order["order_id"]
    r = api.client.post(
        f"/orders/{order_id}/cod-confirmation",
        headers={**api.staff(), "If-Match": f'"{order["version"]}"'},
    )
    assert r.status_code == 200, r.text
    parcel = shipped(api, order_id, (1, 2))
    number = parcel["tracking_number"]
    cash = {"amount": 3000, "currency": "CNY", "receipt": "PH-COD-7"}
    r = parcelhub_webhook(
        api,
        {
            "events": [
                parcelhub_event(number, "PICKED_UP", AT, "c-1"),
                parcelhub_event(number, "DELIVERED", AT + timedelta(hours=9), "c-2"),
                parcelhub_event(number, "COD_COLLECTED", AT + timedelta(hours=9), "c-3", cod=cash),
            ]
        },
    )
    assert r.status_code == 200, r.text
    seen = tracking(api, order_id)
    assert seen["status"] == "delivered"
    assert seen["amounts"]["captured"] == 3000
    assert [p["state"] for p in seen["payments"]] == ["captured"]
    # The carrier redelivers the same webhook: nothing new is written.
    before = heads(api)
    assert (
        parcelhub_webhook(
            api, {"events": [parcelhub_event(number, "COD_COLLECTED", AT, "c-3", cod=cash)]}
        ).status_code
        == 200
    )
    api.settle()
    assert heads(api) == before
    balance = api.client.get("/carriers/parcelhub/cod-balance", headers=api.staff()).json()
    assert balance["outstanding"] == {"amount": 3000, "currency": "CNY"}


@pytest.fixture
def guarded(store_settings: Settings, clock: FakeClock) -> Iterator[Api]:
    """Two orders a minute per client and bodies of at most 4 KiB."""
    app = create_app(
        api_settings(store_settings, orders_per_minute=2, max_body_bytes=4096), clock=clock
    )
    with TestClient(app=app, raise_server_exceptions=False) as client:
        yield Api(client)


def test_order_placement_is_rate_limited_per_client(guarded: Api) -> None:
    api = guarded
    stocked_product(api, "TEA-1", price=1000, stock=10)
    for n in range(2):
        place(api, "TEA-1", 1, 1000, "alipay", f"rl-{n}")
    before = heads(api)
    r = api.client.post(
        "/orders",
        json={
            "lines": [{"sku": "TEA-1", "quantity": 1, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": "alipay", "amount": {"amount": 1000, "currency": "CNY"}}],
        },
        headers=api.customer(),
    )
    body = problem(r, 429, "http.rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert "detail" in body
    assert heads(api) == before
    # Another client is not held back by the first one, and reads are not throttled.
    place_other = api.client.post(
        "/orders",
        json={
            "lines": [{"sku": "TEA-1", "quantity": 1, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": "alipay", "amount": {"amount": 1000, "currency": "CNY"}}],
        },
        headers=api.customer("han-mei"),
    )
    assert place_other.status_code == 201, place_other.text
    assert api.client.get("/customers/me/orders", headers=api.customer()).status_code == 200


def test_an_oversized_body_is_refused_before_anything_is_written(guarded: Api) -> None:
    api = guarded
    stocked_product(api, "TEA-1", price=1000, stock=10)
    before = heads(api)
    huge = {
        "lines": [{"sku": "TEA-1", "quantity": 1, "delivery_group": "home"}],
        "delivery_groups": [{"group_id": "home", "address": {**ADDRESS, "line2": "x" * 8000}}],
        "payments": [{"method": "alipay", "amount": {"amount": 1000, "currency": "CNY"}}],
    }
    r = api.client.post(
        "/orders", json=huge, headers={**api.customer(), "Idempotency-Key": "big-1"}
    )
    problem(r, 413, "http.body_too_large")
    r = api.client.post("/products", json={"sku": "X", "title": "y" * 9000}, headers=api.staff())
    problem(r, 413, "http.body_too_large")
    assert heads(api) == before
