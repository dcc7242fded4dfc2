"""The auditor's HTTP API: history, point in time and replay verification, for the
auditor role only; unknown ids are 404 and bad input 400, as RFC 9457 problems."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from ordertrail.domain import ids
from tests.audit.history_support import Shop, busy_shop
from tests.http.conftest import Api
from tests.http.test_smoke import ADDRESS
from tests.support.clock import FakeClock

PROBLEM = "application/problem+json"


@pytest.fixture
def shop(api: Api, clock: FakeClock) -> Shop:
    built = busy_shop(api.runtime.ot, clock)
    api.settle()
    return built


def rfc3339(moment: Any) -> str:
    return str(moment.isoformat()).replace("+00:00", "Z")


def endpoints(shop: Shop) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", f"/audit/orders/{shop.returned}/history", {}),
        ("GET", f"/audit/orders/{shop.returned}", {"as_of": "2026-11-12T00:00:00Z"}),
        ("GET", f"/audit/aggregates/orders/{shop.returned}", {"version": 1}),
        ("POST", "/audit/replay-verification", {"aggregates": "false"}),
    ]


def test_only_auditors_may_read_the_audit_trail(api: Api, shop: Shop) -> None:
    for method, path, params in endpoints(shop):
        for headers, status in (
            (api.customer("cust-1"), 403),
            (api.staff(), 403),
            ({}, 401),
            (api.auditor(), 200),
        ):
            response = api.client.request(method, path, params=params, headers=headers)
            assert response.status_code == status, (method, path, response.text)
            if status != 200:
                assert response.headers["content-type"].startswith(PROBLEM)
                assert response.json()["status"] == status


def test_an_orders_history_over_http(api: Api, shop: Shop) -> None:
    placed = api.client.post(
        "/orders",
        json={
            "lines": [{"sku": "TEA-1", "quantity": 1, "delivery_group": "home"}],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": "alipay", "amount": {"amount": 1000, "currency": "CNY"}}],
        },
        headers={**api.customer("li-lei"), "Idempotency-Key": "order-1"},
    )
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["order_id"]
    response = api.client.get(f"/audit/orders/{order_id}/history", headers=api.auditor())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [e["event_type"] for e in body["entries"]] == [
        "InventoryItem.StockReserved",
        "Order.Placed",
        "CommandReceipt.Recorded",
    ]
    placed_entry = body["entries"][1]
    assert (placed_entry["actor_kind"], placed_entry["actor_id"]) == ("customer", "li-lei")
    assert placed_entry["correlation_id"] == body["entries"][0]["correlation_id"]
    assert placed_entry["payload"]["customer_id"] == "li-lei"
    assert body["index_lag"]["Orders"] >= 2  # not projected yet: read from the log

    returned = api.client.get(f"/audit/orders/{shop.returned}/history", headers=api.auditor())
    entries = returned.json()["entries"]
    assert len(entries) > 40
    assert [e["timestamp"] for e in entries] == sorted(e["timestamp"] for e in entries)
    assert {e["aggregate_type"] for e in entries} >= {
        "Order",
        "Shipment",
        "TrackingNumber",
        "AfterSalesCase",
        "ReturnLedger",
        "InventoryItem",
        "CommandReceipt",
    }


def test_an_order_and_any_aggregate_at_a_moment_or_version(api: Api, shop: Shop) -> None:
    auditor = api.auditor()
    booked = api.client.get(
        f"/audit/orders/{shop.returned}",
        params={"as_of": rfc3339(shop.moments["first_parcel_booked"])},
        headers=auditor,
    )
    assert booked.status_code == 200, booked.text
    body = booked.json()
    assert body["order"]["state"]["status"] == "ready_to_ship"
    assert [s["state"]["status"] for s in body["shipments"]] == ["awaiting_pickup"]
    assert [(r["sku"], r["reservation"]["quantity"]) for r in body["reservations"]] == [
        ("TEA-1", 3)
    ]
    before = api.client.get(
        f"/audit/orders/{shop.from_cart}",
        params={"as_of": rfc3339(shop.moments["cart_ready"])},
        headers=auditor,
    ).json()
    assert before["order"] is None
    assert [c["version"] for c in before["carts"]] == [4]

    first = api.client.get(
        f"/audit/aggregates/orders/{shop.returned}", params={"version": 1}, headers=auditor
    )
    assert first.status_code == 200
    assert (first.json()["version"], first.json()["state"]["status"]) == (1, "awaiting_payment")
    item = ids.inventory_item_id("TEA-1", "main")
    at = api.client.get(
        f"/audit/aggregates/Inventory/{item}",
        params={"as_of": rfc3339(shop.moments["returned_paid"])},
        headers=auditor,
    ).json()
    assert at["aggregate_type"] == "InventoryItem"
    assert at["state"]["reserved"] == 3
    now = api.client.get(f"/audit/aggregates/inventory/{item}", headers=auditor).json()
    assert now["version"] > at["version"]


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/audit/orders/{unknown}/history", {}, "order.not_found"),
        ("/audit/orders/{unknown}", {"as_of": "2026-11-12T00:00:00Z"}, "order.not_found"),
        ("/audit/orders/{case}/history", {}, "order.not_found"),
        ("/audit/aggregates/orders/{unknown}", {}, "audit.aggregate_not_found"),
        ("/audit/aggregates/orders/{unknown}", {"version": 2}, "audit.aggregate_not_found"),
        ("/audit/aggregates/orders/{order}", {"version": 999}, "audit.version_not_found"),
        (
            "/audit/aggregates/orders/{order}",
            {"as_of": "2001-01-01T00:00:00Z"},
            "audit.not_yet_recorded",
        ),
        ("/audit/aggregates/warehouse/{order}", {}, "audit.unknown_application"),
    ],
)
def test_unknown_ids_are_404(
    api: Api, shop: Shop, path: str, params: dict[str, Any], code: str
) -> None:
    url = path.format(unknown=uuid4(), case=shop.return_case, order=shop.returned)
    response = api.client.get(url, params=params, headers=api.auditor())
    assert response.status_code == 404, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "/audit/orders/{order}", {"as_of": "yesterday"}),
        ("GET", "/audit/orders/{order}", {"as_of": "2026-11-12T00:00:00"}),  # no offset
        ("GET", "/audit/orders/{order}", {"as_of": "1700000000"}),  # not a Unix time
        ("GET", "/audit/orders/{order}", {"as_of": "0001-01-01T00:00:00-01:01"}),
        ("GET", "/audit/aggregates/orders/{order}", {"as_of": "9999-12-31T23:59:59-14:00"}),
        ("GET", "/audit/orders/not-a-uuid/history", {}),
        ("GET", "/audit/aggregates/orders/{order}", {"version": 0}),
        ("GET", "/audit/aggregates/orders/{order}", {"version": "two"}),
        ("GET", "/audit/aggregates/orders/{order}", {"version": 10**12}),
        (
            "GET",
            "/audit/aggregates/orders/{order}",
            {"version": 1, "as_of": "2026-11-12T00:00:00Z"},
        ),
        ("POST", "/audit/replay-verification", {"models": "no_such_model"}),
        ("POST", "/audit/replay-verification", {"wait_seconds": -1}),
        ("POST", "/audit/replay-verification", {"aggregates": "perhaps"}),
    ],
)
def test_bad_input_is_a_400_problem(
    api: Api, shop: Shop, method: str, path: str, params: dict[str, Any]
) -> None:
    response = api.client.request(
        method, path.format(order=shop.returned), params=params, headers=api.auditor()
    )
    assert response.status_code in (400, 404), response.text  # a non-UUID path is no route
    assert response.headers["content-type"].startswith(PROBLEM)
    if "not-a-uuid" not in path:
        assert response.status_code == 400
        assert response.json()["code"] == "http.invalid_request"


def test_replay_verification_over_http(api: Api, shop: Shop) -> None:
    clean = api.client.post("/audit/replay-verification", headers=api.auditor())
    assert clean.status_code == 200, clean.text
    body = clean.json()
    assert body["ok"] is True
    assert body["difference_count"] == 0
    assert body["aggregates"]["failures"] == []
    assert {m["name"] for m in body["models"]} >= {"inventory_levels", "audit_index"}

    item = str(ids.inventory_item_id("CUP-1", "main"))
    with api.runtime.read.store.transaction() as tx:
        assert tx.count("UPDATE inventory_levels SET on_hand = 999 WHERE item_id = ?", (item,))
    found = api.client.post(
        "/audit/replay-verification",
        params={"models": ["inventory_levels", "customer_orders"], "aggregates": "false"},
        headers=api.auditor(),
    ).json()
    assert found["ok"] is False
    assert found["aggregates"] is None
    assert [m["name"] for m in found["models"]] == ["inventory_levels", "customer_orders"]
    assert found["models"][0]["differences"] == [
        {
            "model": "inventory_levels",
            "table": "inventory_levels",
            "key": {"item_id": item},
            "column": "on_hand",
            "live": 999,
            "replayed": 18,
        }
    ]


def test_every_audit_operation_is_documented_with_an_example(api: Api) -> None:
    schema = api.client.get("/schema/openapi.json").json()
    mine = {
        "/audit/orders/{order_id}/history",
        "/audit/orders/{order_id}",
        "/audit/aggregates/{application}/{aggregate_id}",
        "/audit/replay-verification",
    }
    operations = [
        (path, operation)
        for path, item in schema["paths"].items()
        if path in mine
        for operation in item.values()
    ]
    assert len(operations) == 4
    for path, operation in operations:
        assert operation["summary"], path
        assert operation["tags"] == ["audit"]
        ok = operation["responses"]["200"]["content"]["application/json"]
        assert ok["examples"], path
        assert "403" in operation["responses"]
