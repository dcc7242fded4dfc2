"""Logistics over HTTP: shipping an order, tracking and cancelling parcels, the carriers'
signed callbacks (Kuaidi100 pushes, ParcelHub webhooks) and cash-on-delivery accounts.

The helpers here (a stocked product, a paid order, signed carrier callbacks) are shared
with the after-sales and knowledge API tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote
from uuid import UUID

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from ordertrail.adapters.carriers import Kuaidi100Gateway, ParcelHubGateway
from ordertrail.application.context import CommandContext
from ordertrail.application.orders import CapturePayment, ConfirmCashOnDelivery
from ordertrail.domain import Actor, Money
from tests.http.conftest import Api

PROBLEM = "application/problem+json"
ADDRESS = {
    "recipient": "Li Lei",
    "phone": "+86 139 0000 0000",
    "line1": "88 Huaihai Road",
    "city": "Shanghai",
    "country": "CN",
}
MISSING_ID = "0b6c2f6e-1d4c-4e8f-9a55-3f1f4c2d9e01"


# --- shared helpers ---------------------------------------------------------------------


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Assert an RFC 9457 problem with this status and stable code; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def heads(api: Api) -> dict[str, int]:
    """The newest position of every store: unchanged heads mean nothing was written."""
    return {app.name: app.head() for app in api.runtime.ot.applications}


def stocked_product(
    api: Api, sku: str = "TEA-1", price: int = 1000, stock: int = 20, category: str = "tea"
) -> None:
    r = api.client.post(
        "/products",
        json={
            "sku": sku,
            "title": f"Product {sku}",
            "category": category,
            "price": {"amount": price, "currency": "CNY"},
        },
        headers=api.staff(),
    )
    assert r.status_code == 201, r.text
    if stock:
        r = api.client.post(
            f"/inventory/{sku}/receipts", json={"quantity": stock}, headers=api.staff()
        )
        assert r.status_code == 200, r.text


def placed_order(
    api: Api,
    *lines: tuple[str, int],
    price: int = 1000,
    customer: str = "li-lei",
    method: str = "alipay",
) -> dict[str, Any]:
    """An order placed over HTTP by ``customer`` (products stocked first if need be)."""
    for sku, _ in lines:
        if api.client.get(f"/inventory/{sku}", headers=api.staff()).status_code == 404:
            stocked_product(api, sku, price)
    total = sum(price * quantity for _, quantity in lines)
    r = api.client.post(
        "/orders",
        json={
            "lines": [{"sku": sku, "quantity": q, "delivery_group": "home"} for sku, q in lines],
            "delivery_groups": [{"group_id": "home", "address": ADDRESS}],
            "payments": [{"method": method, "amount": {"amount": total, "currency": "CNY"}}],
        },
        headers=api.customer(customer),
    )
    assert r.status_code == 201, r.text
    order: dict[str, Any] = r.json()
    return order


def paid_order(
    api: Api, *lines: tuple[str, int], price: int = 1000, customer: str = "li-lei"
) -> dict[str, Any]:
    """Placed over HTTP, its payment captured (the provider's callback is not ours)."""
    order = placed_order(api, *(lines or (("TEA-1", 2),)), price=price, customer=customer)
    payment = order["payments"][0]
    api.runtime.ot.orders.capture_payment(
        CapturePayment(
            UUID(order["order_id"]),
            UUID(payment["payment_id"]),
            Money(payment["amount"]["amount"], "CNY"),
            f"pay-{order['order_id']}",
        ),
        CommandContext(actor=Actor.of("provider", "alipay")),
    )
    return order


def cod_order(api: Api, *lines: tuple[str, int], price: int = 1000) -> dict[str, Any]:
    """Placed over HTTP to be paid in cash on delivery, confirmed by staff."""
    order = placed_order(api, *lines, price=price, method="cash_on_delivery")
    api.runtime.ot.orders.confirm_cash_on_delivery(
        ConfirmCashOnDelivery(UUID(order["order_id"])),
        CommandContext(actor=Actor.of("staff", "mei")),
    )
    return order


def ship(
    api: Api,
    order_id: str,
    *lines: tuple[int, int],
    carrier: str | None = None,
    preference: str = "cheapest",
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    body: dict[str, Any] = {
        "delivery_group": "home",
        "lines": [{"line_no": n, "quantity": q} for n, q in (lines or ((1, 2),))],
        "weight_grams": 800,
        "preference": preference,
    }
    if carrier is not None:
        body["carrier"] = carrier
    return api.client.post(
        f"/orders/{order_id}/shipments", json=body, headers=headers or api.staff()
    )


def shipped(api: Api, order_id: str, *lines: tuple[int, int], **kwargs: Any) -> dict[str, Any]:
    r = ship(api, order_id, *lines, **kwargs)
    assert r.status_code == 201, r.text
    shipment: dict[str, Any] = r.json()
    return shipment


def parcelhub(api: Api) -> ParcelHubGateway:
    gateway = api.runtime.ot.fulfilment.carriers.get("parcelhub")
    assert isinstance(gateway, ParcelHubGateway)
    return gateway


def kuaidi100(api: Api) -> Kuaidi100Gateway:
    gateway = api.runtime.ot.fulfilment.carriers.get("kuaidi100")
    assert isinstance(gateway, Kuaidi100Gateway)
    return gateway


def parcelhub_event(
    tracking_number: str, code: str, at: datetime, event_id: str | None = None, **more: Any
) -> dict[str, Any]:
    return {
        "event_id": event_id or f"evt-{code}-{at:%H%M%S}",
        "tracking_number": tracking_number,
        "occurred_at": at.isoformat(),
        "code": code,
        "location": {"facility": "Minhang hub", "city": "Shanghai", "country": "CN"},
        **more,
    }


def parcelhub_webhook(api: Api, payload: dict[str, Any]) -> httpx.Response:
    body, headers = parcelhub(api).signed_body(payload)
    return api.client.post("/callbacks/carriers/parcelhub", content=body, headers=headers)


def kuaidi100_param(
    tracking_number: str, entries: list[tuple[datetime, str, str]]
) -> dict[str, Any]:
    """A push with the whole history (newest first), entries as (when, code, text)."""
    china = [(at + timedelta(hours=8), code, text) for at, code, text in entries]
    return {
        "status": "polling",
        "billstatus": "",
        "message": "",
        "lastResult": {
            "message": "ok",
            "nu": tracking_number,
            "com": "shunfeng",
            "ischeck": "0",
            "state": china[-1][1] if china else "0",
            "status": "200",
            "data": [
                {
                    "time": f"{at:%Y-%m-%d %H:%M:%S}",
                    "ftime": f"{at:%Y-%m-%d %H:%M:%S}",
                    "context": text,
                    "statusCode": code,
                    "areaName": "上海,上海市,闵行区",
                }
                for at, code, text in reversed(china)
            ],
        },
    }


def kuaidi100_push(api: Api, param: dict[str, Any] | str) -> httpx.Response:
    return api.client.post(
        "/callbacks/carriers/kuaidi100",
        content=kuaidi100(api).signed_push(param),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def deliver_by_parcelhub(api: Api, shipment: dict[str, Any], at: datetime) -> None:
    """ParcelHub reports pickup and delivery; the process managers follow."""
    number = shipment["tracking_number"]
    r = parcelhub_webhook(
        api,
        {
            "events": [
                parcelhub_event(number, "PICKED_UP", at),
                parcelhub_event(number, "DELIVERED", at + timedelta(hours=20)),
            ]
        },
    )
    assert r.status_code == 200, r.text
    api.settle()


def order_status(api: Api, order_id: str) -> str:
    r = api.client.get(f"/orders/{order_id}", headers=api.staff())
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


# --- shipping -------------------------------------------------------------------------


def test_staff_ship_a_paid_order_and_customers_see_only_their_parcels(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    r = ship(api, order["order_id"], (1, 1))
    assert r.status_code == 201, r.text
    cheapest = r.json()
    assert r.headers["location"] == f"/shipments/{cheapest['shipment_id']}"
    assert r.headers["etag"] == f'"{cheapest["version"]}"'
    assert "Orders=" in r.headers["x-ordertrail-position"]
    assert "Logistics=" in r.headers["x-ordertrail-position"]
    assert cheapest["carrier"] == "parcelhub"  # 10.00 beats Kuaidi100's 23.00 (no region)
    assert cheapest["tracking_number"].startswith("PH")
    assert cheapest["status"] == "awaiting_pickup"
    assert cheapest["lines"] == [{"line_no": 1, "sku": "TEA-1", "quantity": 1, "warehouse": "main"}]
    assert cheapest["cash_on_delivery"] is None
    assert cheapest["timeline"] == []
    fastest = shipped(api, order["order_id"], (1, 1), preference="fastest")
    assert fastest["carrier"] == "kuaidi100"
    assert fastest["tracking_number"].startswith("SF")

    problem(ship(api, order["order_id"], (1, 1)), 409, "logistics.exceeds_ordered")

    url = f"/shipments/{cheapest['shipment_id']}"
    r = api.client.get(url, headers=api.staff())
    assert r.status_code == 200
    assert r.json() == cheapest
    assert r.headers["etag"] == f'"{cheapest["version"]}"'
    mine = api.client.get(url, headers=api.customer("li-lei"))
    assert mine.status_code == 200
    assert mine.json()["tracking_number"] == cheapest["tracking_number"]
    problem(api.client.get(url, headers=api.customer("han-meimei")), 404, "http.not_found")
    problem(api.client.get(url, headers=api.auditor()), 403, "http.forbidden")
    problem(api.client.get(url), 401, "http.unauthorized")
    problem(
        api.client.get(f"/shipments/{MISSING_ID}", headers=api.staff()),
        404,
        "logistics.shipment_not_found",
    )


def test_shipping_refuses_bad_requests_and_other_roles(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    url = f"/orders/{order['order_id']}/shipments"
    good = {"delivery_group": "home", "lines": [{"line_no": 1, "quantity": 1}], "weight_grams": 800}
    before = heads(api)
    for malformed in (
        {**good, "weight_grams": 0},
        {**good, "lines": []},
        {**good, "lines": [{"line_no": 1}]},
        {**good, "preference": "slowest"},
        {**good, "colour": "red"},
        {"delivery_group": "home"},
    ):
        body = problem(
            api.client.post(url, json=malformed, headers=api.staff()), 400, "http.invalid_request"
        )
        assert body["details"]["errors"], body
    problem(
        api.client.post(url, content=b"{not json", headers=api.staff()), 400, "http.invalid_request"
    )
    problem(
        api.client.post(url, json={**good, "delivery_group": "office"}, headers=api.staff()),
        422,
        "logistics.invalid_shipment",
    )
    problem(
        api.client.post(url, json={**good, "carrier": "dhl"}, headers=api.staff()),
        422,
        "logistics.unknown_carrier",
    )
    problem(
        api.client.post(url, json={**good, "weight_grams": 70_000}, headers=api.staff()),
        409,
        "logistics.no_carrier_available",
    )
    assert heads(api) == before
    problem(api.client.post(url, json=good, headers=api.customer()), 403, "http.forbidden")
    problem(api.client.post(url, json=good), 401, "http.unauthorized")
    problem(
        api.client.post(f"/orders/{MISSING_ID}/shipments", json=good, headers=api.staff()),
        404,
        "order.not_found",
    )
    unpaid = placed_order(api, ("TEA-1", 1))
    problem(ship(api, unpaid["order_id"], (1, 1)), 409, "order.invalid_transition")


def test_a_shipment_is_created_once_per_idempotency_key(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    keyed = {**api.staff(), "Idempotency-Key": "ship-1"}
    first = ship(api, order["order_id"], (1, 1), headers=keyed)
    assert first.status_code == 201, first.text
    before = heads(api)
    again = ship(api, order["order_id"], (1, 1), headers=keyed)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert heads(api) == before
    problem(ship(api, order["order_id"], (1, 2), headers=keyed), 422, "http.idempotency_key_reused")
    assert heads(api) == before


def test_cancel_a_parcel_before_pickup_with_if_match(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    shipment = shipped(api, order["order_id"], (1, 2))
    url = f"/shipments/{shipment['shipment_id']}/cancel"
    stale = {**api.staff(), "If-Match": f'"{shipment["version"] - 1}"'}
    problem(
        api.client.post(url, json={"reason": "wrong box"}, headers=stale),
        412,
        "command.version_mismatch",
    )
    problem(
        api.client.post(
            url, json={"reason": "wrong box"}, headers={**api.staff(), "If-Match": "3"}
        ),
        400,
        "http.invalid_request",
    )
    problem(
        api.client.post(url, json={"reason": ""}, headers=api.staff()), 400, "http.invalid_request"
    )
    problem(
        api.client.post(url, json={"reason": "x"}, headers=api.customer()), 403, "http.forbidden"
    )
    current = {**api.staff(), "If-Match": f'"{shipment["version"]}"'}
    r = api.client.post(url, json={"reason": "wrong box"}, headers=current)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.headers["etag"] == f'"{r.json()["version"]}"'
    problem(
        api.client.post(url, json={"reason": "again"}, headers=api.staff()),
        409,
        "logistics.invalid_transition",
    )
    api.settle()
    # Its units went back to the order: they can be shipped again.
    again = shipped(api, order["order_id"], (1, 2))
    assert again["shipment_id"] != shipment["shipment_id"]


# --- carrier callbacks ------------------------------------------------------------------


def test_a_signed_parcelhub_webhook_moves_the_parcel(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    shipment = shipped(api, order["order_id"], (1, 2), carrier="parcelhub")
    number = shipment["tracking_number"]
    at = datetime.fromisoformat("2026-11-11T10:00:00+08:00")
    r = parcelhub_webhook(api, parcelhub_event(number, "PICKED_UP", at, "evt-1"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.content == b'{"received":true}'
    assert "Logistics=" in r.headers["x-ordertrail-position"]
    url = f"/shipments/{shipment['shipment_id']}"
    assert api.client.get(url, headers=api.staff()).json()["status"] == "picked_up"
    api.settle()
    assert order_status(api, order["order_id"]) == "shipped"

    batch = {
        "events": [
            parcelhub_event(number, "IN_TRANSIT", at + timedelta(hours=3), "evt-2"),
            parcelhub_event(number, "DELIVERED", at + timedelta(hours=20), "evt-3"),
        ]
    }
    assert parcelhub_webhook(api, batch).status_code == 200
    api.settle()
    seen = api.client.get(url, headers=api.customer()).json()
    assert seen["status"] == "delivered"
    assert [s["milestone"] for s in seen["timeline"]] == ["picked_up", "in_transit", "delivered"]
    assert seen["timeline"][0]["location"] == "Minhang hub, Shanghai, CN"
    assert seen["delivered_at"] is not None
    assert order_status(api, order["order_id"]) == "delivered"

    # Carriers retry: the same callbacks again change nothing.
    before = heads(api)
    assert parcelhub_webhook(api, batch).status_code == 200
    assert (
        parcelhub_webhook(api, parcelhub_event(number, "PICKED_UP", at, "evt-1")).status_code == 200
    )
    assert heads(api) == before


def test_a_signed_kuaidi100_push_moves_the_parcel(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 1))
    shipment = shipped(api, order["order_id"], (1, 1), carrier="kuaidi100")
    number = shipment["tracking_number"]
    at = datetime.fromisoformat("2026-11-11T02:00:00+00:00")
    history = [
        (at, "1", "顺丰速运 已收取快件"),
        (at + timedelta(hours=4), "0", "快件在【上海转运中心】"),
    ]
    r = kuaidi100_push(api, kuaidi100_param(number, history))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json;charset=UTF-8"
    assert r.json() == {"result": True, "returnCode": "200", "message": "成功"}
    url = f"/shipments/{shipment['shipment_id']}"
    seen = api.client.get(url, headers=api.staff()).json()
    assert seen["status"] == "in_transit"
    assert seen["timeline"][0]["description"] == "顺丰速运 已收取快件"

    # Kuaidi100 pushes the whole history every time: only the new entry counts.
    history.append((at + timedelta(hours=26), "304", "您的快件已签收"))
    assert kuaidi100_push(api, kuaidi100_param(number, history)).status_code == 200
    api.settle()
    assert api.client.get(url, headers=api.staff()).json()["status"] == "delivered"
    assert order_status(api, order["order_id"]) == "delivered"
    before = heads(api)
    assert kuaidi100_push(api, kuaidi100_param(number, history)).status_code == 200
    assert heads(api) == before


def test_tampered_or_unsigned_callbacks_are_refused_and_write_nothing(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    ph = shipped(api, order["order_id"], (1, 1), carrier="parcelhub")
    k100 = shipped(api, order["order_id"], (1, 1), carrier="kuaidi100")
    at = datetime.fromisoformat("2026-11-11T10:00:00+08:00")
    before = heads(api)

    body, headers = parcelhub(api).signed_body(
        parcelhub_event(ph["tracking_number"], "PICKED_UP", at)
    )
    tampered = body.replace(b"PICKED_UP", b"DELIVERED")
    for content, sent in (
        (tampered, headers),
        (body, {"Content-Type": "application/json"}),
        (body, {**headers, "X-ParcelHub-Signature": "sha256=" + "0" * 64}),
        (body, {**headers, "X-ParcelHub-Signature": ParcelHubGateway("other").sign(body)}),
    ):
        r = api.client.post("/callbacks/carriers/parcelhub", content=content, headers=sent)
        problem(r, 401, "logistics.bad_signature")

    push = kuaidi100(api).signed_push(kuaidi100_param(k100["tracking_number"], [(at, "3", "签收")]))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for content in (
        push.replace(b"sign=", b"sign=0"),
        push.split(b"&sign=")[0],
        Kuaidi100Gateway("another-salt").signed_push(
            kuaidi100_param(k100["tracking_number"], [(at, "3", "签收")])
        ),
        b"",
    ):
        r = api.client.post("/callbacks/carriers/kuaidi100", content=content, headers=form)
        problem(r, 401, "logistics.bad_signature")
    # A bearer token is no substitute for the carrier's signature.
    r = api.client.post(
        "/callbacks/carriers/parcelhub", content=tampered, headers={**headers, **api.staff()}
    )
    problem(r, 401, "logistics.bad_signature")
    assert heads(api) == before
    problem(
        api.client.post("/callbacks/carriers/dhl", content=body, headers=headers),
        404,
        "http.not_found",
    )
    statuses = {
        api.client.get(f"/shipments/{s['shipment_id']}", headers=api.staff()).json()["status"]
        for s in (ph, k100)
    }
    assert statuses == {"awaiting_pickup"}


def test_callbacks_about_unknown_parcels_are_acknowledged_not_recorded(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 1))
    shipment = shipped(api, order["order_id"], (1, 1), carrier="parcelhub")
    at = datetime.fromisoformat("2026-11-11T10:00:00+08:00")
    batch = {
        "events": [
            parcelhub_event("PHUNKNOWN000", "PICKED_UP", at, "evt-a"),
            parcelhub_event(shipment["tracking_number"], "PICKED_UP", at, "evt-b"),
        ]
    }
    r = parcelhub_webhook(api, batch)
    assert r.status_code == 200, r.text
    assert r.content == b'{"received":true}'
    assert r.headers["x-ordertrail-unrecorded"] == "1"
    seen = api.client.get(f"/shipments/{shipment['shipment_id']}", headers=api.staff()).json()
    assert seen["status"] == "picked_up"

    before = heads(api)
    r = kuaidi100_push(api, kuaidi100_param("SF000000000000", [(at, "1", "已收取快件")]))
    assert r.status_code == 200
    assert r.json()["result"] is True
    # The end of monitoring, without a result: nothing to record, acknowledged.
    r = kuaidi100_push(api, {"status": "abort", "message": "3天查询无记录"})
    assert r.status_code == 200, r.text
    assert r.json()["result"] is True
    # Correctly signed but not the carrier's format: an error, so that it is looked at.
    body, headers = parcelhub(api).signed_body({"tracking_number": shipment["tracking_number"]})
    r = api.client.post("/callbacks/carriers/parcelhub", content=body, headers=headers)
    problem(r, 422, "logistics.invalid_notification")
    assert heads(api) == before


# --- cash on delivery -------------------------------------------------------------------


def test_cash_on_delivery_is_collected_and_remitted(api: Api) -> None:
    order = cod_order(api, ("TEA-1", 2), price=1500)
    shipment = shipped(api, order["order_id"], (1, 2))
    assert shipment["carrier"] == "parcelhub"  # the carrier that collects cash
    assert shipment["cash_on_delivery"] == {
        "due": {"amount": 3000, "currency": "CNY"},
        "collected": None,
    }
    number = shipment["tracking_number"]
    at = datetime.fromisoformat("2026-11-11T10:00:00+08:00")
    # A collection the parcel refuses (not the amount due) is acknowledged, not recorded:
    # the carrier retrying it would not make it right.
    wrong = {"amount": 2999, "currency": "CNY", "receipt": "PH-COD-0041"}
    before = heads(api)
    r = parcelhub_webhook(api, parcelhub_event(number, "COD_COLLECTED", at, "evt-0", cod=wrong))
    assert r.status_code == 200, r.text
    assert r.headers["x-ordertrail-unrecorded"] == "1"
    assert heads(api) == before
    cod = {"amount": 3000, "currency": "CNY", "receipt": "PH-COD-0042"}
    batch = {
        "events": [
            parcelhub_event(number, "PICKED_UP", at, "evt-1"),
            parcelhub_event(number, "DELIVERED", at + timedelta(hours=20), "evt-2"),
            parcelhub_event(number, "COD_COLLECTED", at + timedelta(hours=20), "evt-3", cod=cod),
        ]
    }
    assert parcelhub_webhook(api, batch).status_code == 200
    api.settle()
    seen = api.client.get(f"/shipments/{shipment['shipment_id']}", headers=api.customer()).json()
    assert seen["cash_on_delivery"]["collected"] == {"amount": 3000, "currency": "CNY"}
    paid = api.client.get(f"/orders/{order['order_id']}", headers=api.customer()).json()
    assert paid["captured"] == {"amount": 3000, "currency": "CNY"}

    balance_url = "/carriers/parcelhub/cod-balance"
    balance = api.client.get(balance_url, headers=api.staff())
    assert balance.status_code == 200
    assert balance.json() == {
        "carrier": "parcelhub",
        "collected": {"amount": 3000, "currency": "CNY"},
        "remitted": {"amount": 0, "currency": "CNY"},
        "outstanding": {"amount": 3000, "currency": "CNY"},
        "parcels": 1,
    }

    url = "/carriers/parcelhub/remittances"
    remittance = {
        "amount": {"amount": 2000, "currency": "CNY"},
        "reference": "SETTLE-1",
        "remitted_at": "2026-11-15T10:00:00+08:00",
    }
    r = api.client.post(url, json=remittance, headers=api.staff())
    assert r.status_code == 200, r.text
    assert r.json()["outstanding"] == {"amount": 1000, "currency": "CNY"}
    assert "Logistics=" in r.headers["x-ordertrail-position"]
    # The same remittance reference counts once.
    before = heads(api)
    assert (
        api.client.post(url, json=remittance, headers=api.staff()).json()["remitted"]["amount"]
        == 2000
    )
    assert heads(api) == before
    too_much = {
        **remittance,
        "reference": "SETTLE-2",
        "amount": {"amount": 1001, "currency": "CNY"},
    }
    problem(
        api.client.post(url, json=too_much, headers=api.staff()),
        409,
        "logistics.remittance_exceeds_collected",
    )
    dollars = {**remittance, "reference": "SETTLE-3", "amount": {"amount": 100, "currency": "USD"}}
    problem(
        api.client.post(url, json=dollars, headers=api.staff()), 422, "logistics.invalid_shipment"
    )
    for malformed in (
        {**remittance, "remitted_at": "2026-11-15T10:00:00"},  # no time zone
        {**remittance, "reference": ""},
        {**remittance, "amount": {"amount": -1, "currency": "CNY"}},
        {"amount": {"amount": 1, "currency": "CNY"}},
    ):
        problem(
            api.client.post(url, json=malformed, headers=api.staff()), 400, "http.invalid_request"
        )
    problem(api.client.post(url, json=remittance, headers=api.customer()), 403, "http.forbidden")
    problem(api.client.get(balance_url, headers=api.auditor()), 403, "http.forbidden")
    problem(api.client.get(balance_url), 401, "http.unauthorized")
    problem(api.client.get("/carriers/dhl/cod-balance", headers=api.staff()), 404, "http.not_found")
    problem(
        api.client.post("/carriers/dhl/remittances", json=remittance, headers=api.staff()),
        404,
        "http.not_found",
    )
    keyed = {**api.staff(), "Idempotency-Key": "remit-4"}
    fourth = {**remittance, "reference": "SETTLE-4", "amount": {"amount": 500, "currency": "CNY"}}
    first = api.client.post(url, json=fourth, headers=keyed)
    again = api.client.post(url, json=fourth, headers=keyed)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    problem(
        api.client.post(url, json=remittance, headers=keyed), 422, "http.idempotency_key_reused"
    )


# --- nothing a client sends is a server error ---------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
TEXT = st.text(max_size=30) | st.sampled_from(["", " ", "x" * 600, "a\x00b", "\u200b"])
INTS = st.integers(-(2**70), 2**70) | st.sampled_from([-1, 0, 100_000, 100_001, 10**7 + 1])
SOON = st.datetimes(
    min_value=datetime(2026, 11, 10), max_value=datetime(2026, 11, 20), timezones=st.just(UTC)
).map(datetime.isoformat)
MOMENTS = st.one_of(
    SOON,
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])).map(
        datetime.isoformat
    ),
    st.sampled_from(["2026-11-11T10:00:00", "yesterday", "2026-11-11 18:25:24"]),
)


def often(good: st.SearchStrategy[Any], *rare: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` three times in four, else one of ``rare`` (``one_of`` would weigh each
    distinct strategy the same)."""
    choices = [good, good, good, st.one_of(*rare)] if rare else [good]
    return st.sampled_from(choices).flatmap(lambda chosen: chosen)


def shaped(
    valid: dict[str, st.SearchStrategy[Any]], wild: dict[str, st.SearchStrategy[Any]] | None = None
) -> st.SearchStrategy[Any]:
    """Bodies for one endpoint: random JSON; its keys with random JSON values; its keys
    with wild values of about the right type; and, most often, its keys with values the
    schema accepts (so that the domain, not only the schema, sees them)."""
    names = sorted(valid)
    if not names:
        return often(st.fixed_dictionaries({}), JSON)
    return often(
        st.fixed_dictionaries(valid),
        JSON,
        st.dictionaries(st.sampled_from(names), JSON, max_size=len(names)),
        st.fixed_dictionaries({}, optional={k: v | valid[k] for k, v in (wild or {}).items()}),
    )


def path_ids(*known: str) -> st.SearchStrategy[str]:
    """Path ids: existing ones (most often), random UUIDs and random text."""
    return often(st.sampled_from(known), st.uuids().map(str), st.text(min_size=1, max_size=40))


def money(amounts: st.SearchStrategy[int] | None = None) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {
            "amount": st.integers(0, 5000) if amounts is None else amounts,
            "currency": st.sampled_from(["CNY", "CNY", "USD"]),
        }
    )


def fuzz_posts(api: Api, endpoints: st.SearchStrategy[tuple[str, Any]]) -> None:
    """POST random bodies to the endpoints as staff: never a 5xx; errors are problems."""

    @settings(max_examples=150, deadline=None)
    @given(endpoint=endpoints)
    def post_anything(endpoint: tuple[str, Any]) -> None:
        url, body = endpoint
        r = api.client.post(quote(url, safe="/"), json=body, headers=api.staff())
        assert r.status_code < 500, (url, body, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith(PROBLEM), r.headers

    post_anything()


def test_random_requests_never_cause_a_server_error(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    shipment = shipped(api, order["order_id"], (1, 1))
    cod = cod_order(api, ("TEA-1", 1))
    shipped(api, cod["order_id"], (1, 1))
    line = st.fixed_dictionaries({"line_no": st.integers(1, 3), "quantity": st.integers(1, 3)})
    wild_line = st.fixed_dictionaries({"line_no": INTS, "quantity": INTS})
    carriers = st.sampled_from(["parcelhub", "kuaidi100"]) | st.text(min_size=1, max_size=20)
    fuzz_posts(
        api,
        st.one_of(
            st.tuples(
                path_ids(order["order_id"], cod["order_id"]).map("/orders/{}/shipments".format),
                shaped(
                    {
                        "delivery_group": st.sampled_from(["home", "home", "office"]),
                        "lines": st.lists(line, min_size=1, max_size=3),
                        "weight_grams": st.integers(1, 100_000),
                        "carrier": st.sampled_from(["parcelhub", "kuaidi100", "dhl", None]),
                        "preference": st.sampled_from(["cheapest", "fastest"]),
                    },
                    {
                        "delivery_group": TEXT,
                        "lines": st.lists(wild_line),
                        "weight_grams": INTS,
                        "carrier": TEXT,
                    },
                ),
            ),
            st.tuples(
                path_ids(shipment["shipment_id"]).map("/shipments/{}/cancel".format),
                shaped({"reason": st.sampled_from(["wrong box", "x\ty"])}, {"reason": TEXT}),
            ),
            st.tuples(
                carriers.map("/carriers/{}/remittances".format),
                shaped(
                    {
                        "amount": money(),
                        "reference": st.sampled_from(["SETTLE-1", "SETTLE-2", " "]),
                        "remitted_at": SOON,
                    },
                    {"amount": money(INTS), "reference": TEXT, "remitted_at": MOMENTS},
                ),
            ),
        ),
    )


def test_random_carrier_callbacks_never_cause_a_server_error(api: Api) -> None:
    order = paid_order(api, ("TEA-1", 2))
    shipment = shipped(api, order["order_id"], (1, 1), carrier="parcelhub")
    k100 = shipped(api, order["order_id"], (1, 1), carrier="kuaidi100")
    cod = cod_order(api, ("TEA-1", 1))
    cod_parcel = shipped(api, cod["order_id"], (1, 1))

    def numbers(*known: str) -> st.SearchStrategy[str]:
        ours = st.sampled_from([*known, "PHUNKNOWN00", "SF000000000001"])
        return often(ours, st.text(max_size=70))

    parcelhub_events = st.fixed_dictionaries(
        {
            "event_id": often(st.sampled_from(["evt-1", "evt-2", "evt-3"]), TEXT),
            "tracking_number": numbers(shipment["tracking_number"], cod_parcel["tracking_number"]),
            "occurred_at": often(SOON, MOMENTS),
            "code": st.sampled_from(
                ["PICKED_UP", "IN_TRANSIT", "DELIVERED", "RETURNED", "COD_COLLECTED", "LOST"]
            ),
        },
        optional={
            "location": TEXT | JSON,
            "description": TEXT,
            "cod": st.fixed_dictionaries(
                {
                    "amount": often(st.sampled_from([1000, 999]), INTS),
                    "currency": st.sampled_from(["CNY", "USD"]),
                    "receipt": often(st.just("R-1"), TEXT),
                }
            ),
        },
    )
    parcelhub_bodies = often(
        parcelhub_events
        | st.fixed_dictionaries({"events": st.lists(parcelhub_events, max_size=3)}),
        JSON,
    )
    china_times = st.datetimes(min_value=datetime(2026, 11, 10), max_value=datetime(2026, 11, 20))
    kuaidi100_entries = st.fixed_dictionaries(
        {
            "time": often(china_times.map("{:%Y-%m-%d %H:%M:%S}".format), MOMENTS | TEXT),
            "context": TEXT,
        },
        optional={
            "ftime": TEXT,
            "statusCode": st.sampled_from(["1", "0", "3", "304", "101", "99"]) | TEXT,
            "status": TEXT,
            "areaName": TEXT | JSON,
        },
    )
    kuaidi100_bodies = often(
        st.fixed_dictionaries(
            {
                "status": st.sampled_from(["polling", "abort", "shutdown", "updateall"]),
                "lastResult": st.fixed_dictionaries(
                    {
                        "nu": numbers(k100["tracking_number"]),
                        "data": st.lists(kuaidi100_entries, max_size=3),
                    },
                    optional={"state": st.sampled_from(["0", "3"]) | TEXT},
                ),
            }
        ),
        JSON,
    )
    callbacks = st.one_of(
        st.tuples(st.just("parcelhub"), parcelhub_bodies),
        st.tuples(st.just("kuaidi100"), kuaidi100_bodies),
        st.tuples(st.text(min_size=1, max_size=20), JSON),
    )

    @settings(max_examples=150, deadline=None)
    @given(callback=callbacks, signed=often(st.just(True), st.just(False)))
    def call_back(callback: tuple[str, Any], signed: bool) -> None:
        carrier, body = callback
        content = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if signed and carrier == "parcelhub":
            headers["X-ParcelHub-Signature"] = parcelhub(api).sign(content)
        elif signed and carrier == "kuaidi100":
            content = kuaidi100(api).signed_push(content.decode())
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        r = api.client.post(
            quote(f"/callbacks/carriers/{carrier}", safe="/"), content=content, headers=headers
        )
        assert r.status_code < 500, (carrier, body, r.text)
        if r.status_code >= 400:
            assert r.headers["content-type"].startswith(PROBLEM), r.headers

    call_back()
