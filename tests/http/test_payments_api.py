"""Paying over HTTP: a cart checked out and paid through the Alipay sandbox (a signed
notification posted to the callback), cash-on-delivery confirmation, the generic provider,
duplicate and out-of-order callbacks, forged signatures (nothing written) and amounts that
do not match (refused and recorded on the order)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from ordertrail.adapters.http.app import create_app
from ordertrail.adapters.http.config import DEV_PROVIDER_SECRET
from ordertrail.adapters.payments import alipay, generic
from ordertrail.adapters.settings import Settings
from ordertrail.domain import Money
from ordertrail.domain.orders import Order
from tests.http.conftest import Api, api_settings
from tests.http.test_carts_api import TOTAL, fill_cart, stock_shop
from tests.support.clock import FakeClock

ALIPAY_PRIVATE, ALIPAY_PUBLIC = alipay.generate_key_pair()
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


@pytest.fixture
def pay(store_settings: Settings, clock: FakeClock) -> Iterator[Api]:
    """The app, trusting a test key pair as Alipay's."""
    settings_ = api_settings(store_settings, alipay_public_key_pem=ALIPAY_PUBLIC)
    app = create_app(settings_, clock=clock)
    with TestClient(app=app, raise_server_exceptions=False) as client:
        yield Api(client)


def all_heads(api: Api) -> dict[str, int]:
    return {app.name: app.head() for app in api.runtime.ot.applications}


def placed(
    api: Api, payment: list[dict[str, Any]] | None = None, who: str = "li-lei"
) -> dict[str, Any]:
    """An order checked out of a cart (two delivery groups)."""
    cart_id = fill_cart(api, who, payment)
    r = api.client.post(f"/carts/{cart_id}/checkout", headers=api.customer(who))
    assert r.status_code == 201, r.text
    return dict(r.json())


def payment_of(order: dict[str, Any], method: str) -> str:
    return str(next(p["payment_id"] for p in order["payments"] if p["method"] == method))


def notify(api: Api, params: dict[str, str]) -> Any:
    return api.client.post(
        "/callbacks/payments/alipay", content=alipay.form_body(params), headers=FORM
    )


def alipay_notice(
    order_id: str, payment_id: str, total_fen: int | None = TOTAL, **more: Any
) -> dict[str, str]:
    return alipay.signed_notification(
        ALIPAY_PRIVATE,
        order_id=UUID(order_id),
        payment_id=UUID(payment_id),
        trade_no=more.pop("trade_no", "2026111122001403000500012345"),
        total_fen=total_fen,
        notify_time=FakeClock().now,
        **more,
    )


def generic_event(
    order_id: str, payment_id: str, type: str, amount: int, ref: str = "ch_1"
) -> tuple[bytes, dict[str, str]]:
    return generic.signed_event(
        DEV_PROVIDER_SECRET,
        event_id=f"evt_{uuid4().hex[:8]}",
        type=type,
        order_id=UUID(order_id),
        payment_id=UUID(payment_id),
        amount=Money(amount, "CNY"),
        reference=ref,
    )


def post_generic(api: Api, event: tuple[bytes, dict[str, str]]) -> Any:
    body, headers = event
    return api.client.post("/callbacks/payments/generic", content=body, headers=headers)


def order_events(api: Api, order_id: str) -> list[Any]:
    return list(api.runtime.ot.orders.repository.event_store.get(UUID(order_id)))


def status_of(api: Api, order_id: str) -> str:
    return str(api.client.get(f"/orders/{order_id}", headers=api.staff()).json()["status"])


# --- the whole way ---------------------------------------------------------------------------


def test_a_cart_is_paid_through_the_alipay_sandbox(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay)
    order_id, payment_id = order["order_id"], payment_of(order, "alipay")
    assert order["status"] == "awaiting_payment"

    before = all_heads(pay)
    r = pay.client.post(
        f"/orders/{order_id}/payments/{payment_id}/checkout", headers=pay.customer()
    )
    assert r.status_code == 200, r.text
    start = r.json()
    assert start["provider"] == "alipay"
    assert start["out_trade_no"] == payment_id
    assert start["amount_due"] == {"amount": TOTAL, "currency": "CNY"}
    assert start["sandbox"] is True
    parameters = start["parameters"]
    merchant = alipay.sandbox_merchant_key().public_key()
    alipay.verify(parameters, merchant, alipay.REQUEST_UNSIGNED)
    biz = json.loads(parameters["biz_content"])
    assert biz["out_trade_no"] == payment_id
    assert biz["passback_params"] == order_id
    assert parameters["notify_url"].endswith("/callbacks/payments/alipay")
    url = urlsplit(start["redirect_url"])
    assert url.netloc.endswith("alipaydev.com")
    assert {k: v[0] for k, v in parse_qs(url.query).items()} == parameters
    assert all_heads(pay) == before  # starting to pay records nothing

    # Alipay notifies the notify_url once the shopper paid (what the sandbox would POST).
    params = alipay_notice(
        biz["passback_params"], biz["out_trade_no"], alipay.yuan_to_fen(biz["total_amount"])
    )
    r = notify(pay, params)
    assert r.status_code == 200, r.text
    assert r.text == "success"
    assert r.headers["content-type"].startswith("text/plain")

    paid = pay.client.get(f"/orders/{order_id}", headers=pay.customer()).json()
    assert paid["status"] == "ready_to_ship"
    assert paid["captured"] == {"amount": TOTAL, "currency": "CNY"}
    [capture] = [e for e in order_events(pay, order_id) if isinstance(e, Order.PaymentCaptured)]
    assert str(capture.meta.actor) == "provider:alipay"
    assert capture.provider_ref == params["trade_no"]
    # Paid: there is nothing left to start paying.
    again = pay.client.post(
        f"/orders/{order_id}/payments/{payment_id}/checkout", headers=pay.customer()
    )
    assert again.status_code == 409


def test_redelivered_and_finished_notifications_write_nothing(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay)
    order_id, payment_id = order["order_id"], payment_of(order, "alipay")
    assert notify(pay, alipay_notice(order_id, payment_id)).text == "success"
    before = all_heads(pay)
    for params in (
        alipay_notice(order_id, payment_id),
        alipay_notice(order_id, payment_id, trade_status="TRADE_FINISHED"),
        alipay_notice(order_id, payment_id, None, trade_status="TRADE_CLOSED"),
        alipay_notice(order_id, payment_id, trade_status="WAIT_BUYER_PAY"),
    ):
        r = notify(pay, params)
        assert (r.status_code, r.text) == (200, "success")
    assert all_heads(pay) == before
    assert status_of(pay, order_id) == "ready_to_ship"


def test_a_closed_trade_fails_the_payment_and_a_new_trade_pays_it(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay)
    order_id, payment_id = order["order_id"], payment_of(order, "alipay")
    r = notify(
        pay,
        alipay_notice(order_id, payment_id, None, trade_status="TRADE_CLOSED", trade_no="T-closed"),
    )
    assert r.text == "success"
    states = pay.client.get(f"/orders/{order_id}", headers=pay.customer()).json()["payments"]
    assert states[0]["state"] == "failed"
    assert (
        pay.client.post(
            f"/orders/{order_id}/payments/{payment_id}/checkout", headers=pay.customer()
        ).status_code
        == 200
    )
    assert notify(pay, alipay_notice(order_id, payment_id, trade_no="T-new")).text == "success"
    assert status_of(pay, order_id) == "ready_to_ship"


def test_forged_notifications_are_refused_before_anything_is_written(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay)
    order_id, payment_id = order["order_id"], payment_of(order, "alipay")
    genuine = alipay_notice(order_id, payment_id)
    other_private, _ = alipay.generate_key_pair()
    forged = alipay.signed_notification(
        other_private,
        order_id=UUID(order_id),
        payment_id=UUID(payment_id),
        trade_no="T-9",
        total_fen=TOTAL,
        notify_time=FakeClock().now,
    )
    unsigned = {k: v for k, v in genuine.items() if k != "sign"}
    before = all_heads(pay)
    for params in (
        {**genuine, "total_amount": "0.01"},  # tampered after signing
        {**genuine, "out_trade_no": str(uuid4())},
        forged,
        unsigned,
        {**genuine, "sign_type": "RSA"},
    ):
        r = notify(pay, params)
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "payment.bad_signature"
    body, headers = generic_event(order_id, payment_id, "payment.captured", TOTAL)
    for sent_body, sent_headers in (
        (body.replace(b"ch_1", b"ch_2"), headers),
        (body, {"Content-Type": "application/json"}),
        (body, {**headers, generic.SIGNATURE_HEADER: generic.sign(body, "guessed-secret")}),
        (body, {**headers, generic.SIGNATURE_HEADER: "sha256=" + "0" * 64}),
    ):
        r = pay.client.post("/callbacks/payments/generic", content=sent_body, headers=sent_headers)
        assert r.status_code == 401, r.text
        assert r.json()["code"] == "payment.bad_signature"
    assert all_heads(pay) == before
    assert status_of(pay, order_id) == "awaiting_payment"


def test_an_app_without_an_alipay_key_trusts_no_notification(api: Api) -> None:
    stock_shop(api)
    order = placed(api)
    before = all_heads(api)
    r = notify(api, alipay_notice(order["order_id"], payment_of(order, "alipay")))
    assert r.status_code == 401
    assert all_heads(api) == before


def test_an_unexpected_amount_is_refused_and_recorded(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay)
    order_id, payment_id = order["order_id"], payment_of(order, "alipay")
    r = notify(pay, alipay_notice(order_id, payment_id, TOTAL - 1))
    assert (r.status_code, r.text) == (409, "fail")
    [noted] = [
        e for e in order_events(pay, order_id) if isinstance(e, Order.PaymentDiscrepancyRecorded)
    ]
    assert noted.reported == Money(TOTAL - 1, "CNY")
    assert noted.expected == Money(TOTAL, "CNY")
    assert str(noted.meta.actor) == "provider:alipay"
    current = pay.client.get(f"/orders/{order_id}", headers=pay.customer()).json()
    assert current["status"] == "awaiting_payment"
    assert current["captured"]["amount"] == 0
    before = all_heads(pay)
    r = notify(pay, alipay_notice(order_id, payment_id, TOTAL - 1))  # re-delivered
    assert (r.status_code, r.text) == (409, "fail")
    assert all_heads(pay) == before


def test_notifications_about_what_we_do_not_have_fail(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay, [{"method": "card"}])
    before = all_heads(pay)
    r = notify(pay, alipay_notice(str(uuid4()), str(uuid4())))
    assert (r.status_code, r.text) == (404, "fail")
    r = notify(pay, alipay_notice(order["order_id"], str(uuid4())))
    assert (r.status_code, r.text) == (404, "fail")
    r = notify(pay, alipay_notice(order["order_id"], payment_of(order, "card")))
    assert (r.status_code, r.text) == (409, "fail")  # a card payment is not Alipay's
    signed_nonsense = alipay_notice(
        order["order_id"], payment_of(order, "card"), trade_status="TRADE_NOPE"
    )
    r = notify(pay, signed_nonsense)
    assert (r.status_code, r.text) == (400, "fail")
    r = notify(pay, {**signed_nonsense, "trade_status": "TRADE_SUCCESS"})
    assert r.status_code == 401  # changed after signing
    r = pay.client.post("/callbacks/payments/alipay", content=b"a=1&a=2", headers=FORM)
    assert (r.status_code, r.text) == (400, "fail")
    assert all_heads(pay) == before


# --- the generic provider --------------------------------------------------------------------


def test_card_payments_through_the_generic_provider_in_any_order(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay, [{"method": "card"}])
    order_id, payment_id = order["order_id"], payment_of(order, "card")
    r = pay.client.post(
        f"/orders/{order_id}/payments/{payment_id}/checkout", headers=pay.customer()
    )
    assert r.status_code == 200
    assert r.json()["provider"] == "generic"
    assert r.json()["parameters"]["merchant_reference"] == payment_id

    r = post_generic(pay, generic_event(order_id, payment_id, "payment.captured", TOTAL))
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "recorded"
    assert "Orders=" in r.headers["x-ordertrail-position"]
    assert status_of(pay, order_id) == "ready_to_ship"
    before = all_heads(pay)
    for late, outcome in (
        (generic_event(order_id, payment_id, "payment.authorized", TOTAL), "ignored"),
        (generic_event(order_id, payment_id, "payment.failed", TOTAL, "ch_2"), "ignored"),
        (generic_event(order_id, payment_id, "payment.captured", TOTAL), "duplicate"),
    ):
        r = post_generic(pay, late)
        assert r.status_code == 200, r.text
        assert r.json()["outcome"] == outcome
    assert all_heads(pay) == before

    r = post_generic(pay, generic_event(order_id, payment_id, "refund.succeeded", 2500, "re_1"))
    assert r.json()["outcome"] == "recorded"
    assert (
        pay.client.get(f"/orders/{order_id}", headers=pay.staff()).json()["refunded"]["amount"]
        == 2500
    )
    r = post_generic(pay, generic_event(order_id, payment_id, "refund.succeeded", TOTAL, "re_2"))
    assert r.status_code == 409
    assert r.json()["code"] == "payment.amount_mismatch"


def test_an_authorization_then_its_capture(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay, [{"method": "wechat_pay"}])
    order_id, payment_id = order["order_id"], payment_of(order, "wechat_pay")
    for kind in ("payment.authorized", "payment.captured"):
        r = post_generic(pay, generic_event(order_id, payment_id, kind, TOTAL, "wx_1"))
        assert r.json()["outcome"] == "recorded"
    assert status_of(pay, order_id) == "ready_to_ship"


def test_generic_amount_mismatches_and_wrong_methods_are_refused(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay, [{"method": "card"}])
    order_id, payment_id = order["order_id"], payment_of(order, "card")
    r = post_generic(pay, generic_event(order_id, payment_id, "payment.captured", TOTAL + 100))
    assert r.status_code == 409
    problem = r.json()
    assert problem["code"] == "payment.amount_mismatch"
    assert problem["details"]["reported"] == TOTAL + 100
    assert problem["details"]["expected"] == TOTAL
    assert any(isinstance(e, Order.PaymentDiscrepancyRecorded) for e in order_events(pay, order_id))
    assert status_of(pay, order_id) == "awaiting_payment"

    alipay_order = placed(pay)
    r = post_generic(
        pay,
        generic_event(
            alipay_order["order_id"], payment_of(alipay_order, "alipay"), "payment.captured", TOTAL
        ),
    )
    assert r.status_code == 409
    assert r.json()["code"] == "payment.method_mismatch"
    r = post_generic(pay, generic_event(str(uuid4()), str(uuid4()), "payment.captured", 1))
    assert r.status_code == 404
    body = b'{"event_id": "e", "type": "payment.captured"}'
    r = pay.client.post(
        "/callbacks/payments/generic",
        content=body,
        headers={generic.SIGNATURE_HEADER: generic.sign(body, DEV_PROVIDER_SECRET)},
    )
    assert r.status_code == 422
    assert r.json()["code"] == "payment.invalid_notification"


# --- cash on delivery ------------------------------------------------------------------------


def test_a_cash_on_delivery_order_is_confirmed_by_staff(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay, [{"method": "cash_on_delivery"}])
    order_id = order["order_id"]
    cod = payment_of(order, "cash_on_delivery")
    r = pay.client.post(f"/orders/{order_id}/payments/{cod}/checkout", headers=pay.customer())
    assert r.status_code == 409  # paid to the courier, not online
    path = f"/orders/{order_id}/cod-confirmation"
    assert pay.client.post(path, headers=pay.customer()).status_code == 403
    stale = pay.client.post(path, headers={**pay.staff(), "If-Match": '"0"'})
    assert stale.status_code == 412
    r = pay.client.post(path, headers={**pay.staff(), "If-Match": f'"{order["version"]}"'})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready_to_ship"
    assert r.headers["etag"] == f'"{r.json()["version"]}"'
    again = pay.client.post(path, headers=pay.staff())
    assert again.status_code == 409
    assert again.json()["code"] == "order.invalid_transition"


def test_a_split_order_is_confirmed_once_its_online_part_is_paid(pay: Api) -> None:
    stock_shop(pay)
    online = 10_000
    order = placed(
        pay,
        [
            {"method": "alipay", "amount": {"amount": online, "currency": "CNY"}},
            {"method": "cash_on_delivery", "amount": {"amount": TOTAL - online, "currency": "CNY"}},
        ],
    )
    order_id = order["order_id"]
    path = f"/orders/{order_id}/cod-confirmation"
    assert pay.client.post(path, headers=pay.staff()).status_code == 409
    r = pay.client.post(
        f"/orders/{order_id}/payments/{payment_of(order, 'alipay')}/checkout",
        headers=pay.customer(),
    )
    assert r.json()["amount_due"]["amount"] == online
    assert (
        notify(pay, alipay_notice(order_id, payment_of(order, "alipay"), online)).text == "success"
    )
    assert status_of(pay, order_id) == "awaiting_payment"  # the rest is due on delivery
    assert pay.client.post(path, headers=pay.staff()).json()["status"] == "ready_to_ship"
    no_cod = placed(pay)
    r = pay.client.post(f"/orders/{no_cod['order_id']}/cod-confirmation", headers=pay.staff())
    assert r.status_code == 409


# --- who may start paying ----------------------------------------------------------------------


def test_only_the_orders_customer_starts_paying_it(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay)
    order_id, payment_id = order["order_id"], payment_of(order, "alipay")
    path = f"/orders/{order_id}/payments/{payment_id}/checkout"
    theirs = pay.client.post(path, headers=pay.customer("mallory"))
    missing = pay.client.post(
        f"/orders/{uuid4()}/payments/{payment_id}/checkout", headers=pay.customer("mallory")
    )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["code"] == missing.json()["code"] == "http.not_found"
    assert pay.client.post(path, headers=pay.staff()).status_code == 403
    assert pay.client.post(path).status_code == 401
    r = pay.client.post(f"/orders/{order_id}/payments/{uuid4()}/checkout", headers=pay.customer())
    assert r.status_code == 404
    keyed = {**pay.customer(), "Idempotency-Key": "pay-1"}
    first = pay.client.post(path, headers=keyed)
    replay = pay.client.post(path, headers=keyed)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()


# --- no input makes a payment route fail on its side --------------------------------------------

TEXT = st.text(max_size=30) | st.sampled_from(
    ["", "TRADE_SUCCESS", "TRADE_CLOSED", "136.00", "0.01", "RSA2", "%", "\x00"]
)
FIELDS = [
    "trade_no",
    "out_trade_no",
    "passback_params",
    "trade_status",
    "total_amount",
    "charset",
    "app_id",
    "refund_fee",
]


def test_no_callback_makes_a_payment_route_fail_on_its_side(pay: Api) -> None:
    stock_shop(pay)
    order = placed(pay)
    card = placed(pay, [{"method": "card"}])
    ids = [
        order["order_id"],
        payment_of(order, "alipay"),
        card["order_id"],
        payment_of(card, "card"),
        str(uuid4()),
    ]

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        kind=st.sampled_from(
            ["alipay-raw", "alipay-signed", "generic-raw", "generic-signed", "checkout", "cod"]
        ),
        raw=st.binary(max_size=200),
        params=st.fixed_dictionaries(
            {
                "out_trade_no": st.sampled_from(ids) | TEXT,
                "passback_params": st.sampled_from(ids) | TEXT,
                "trade_status": st.sampled_from(list(alipay.ACTIONS)) | TEXT,
                "trade_no": st.sampled_from(["T-1", "T-2"]) | TEXT,
            },
            optional={
                "total_amount": st.sampled_from(["0.01", "100.00", str(TOTAL / 100)]) | TEXT,
                "charset": TEXT,
                "app_id": TEXT,
            },
        )
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), TEXT, max_size=8),
        event=st.fixed_dictionaries(
            {
                "event_id": TEXT,
                "type": st.sampled_from([t.value for t in generic.EventType]) | TEXT,
                "order_id": st.sampled_from(ids) | TEXT,
                "payment_id": st.sampled_from(ids) | TEXT,
                "amount": st.fixed_dictionaries(
                    {
                        "amount": st.integers(-1, 10**16),
                        "currency": st.sampled_from(["CNY", "USD", "x"]),
                    }
                ),
                "reference": TEXT,
            }
        ),
        first=st.sampled_from(ids),
        second=st.sampled_from(ids),
    )
    def check(
        kind: str,
        raw: bytes,
        params: dict[str, str],
        event: dict[str, Any],
        first: str,
        second: str,
    ) -> None:
        client = pay.client
        if kind == "alipay-raw":
            r = client.post("/callbacks/payments/alipay", content=raw, headers=FORM)
        elif kind == "alipay-signed":
            signed = {"sign_type": "RSA2", **params}
            signed["sign"] = alipay.sign(signed, ALIPAY_PRIVATE)
            r = notify(pay, signed)
        elif kind == "generic-raw":
            r = client.post(
                "/callbacks/payments/generic",
                content=raw,
                headers={generic.SIGNATURE_HEADER: "sha256=" + raw.hex()[:64]},
            )
        elif kind == "generic-signed":
            body = json.dumps(event).encode()
            r = client.post(
                "/callbacks/payments/generic",
                content=body,
                headers={generic.SIGNATURE_HEADER: generic.sign(body, DEV_PROVIDER_SECRET)},
            )
        elif kind == "checkout":
            r = client.post(
                f"/orders/{first}/payments/{second}/checkout", content=raw, headers=pay.customer()
            )
        else:
            r = client.post(f"/orders/{first}/cod-confirmation", content=raw, headers=pay.staff())
        assert r.status_code < 500, r.text

    check()
