"""Payment provider adapters: Alipay's RSA2-signed notifications and page-pay requests, the
generic HMAC-signed webhook, and how a notice lands on an order (duplicates, stale notices,
amount mismatches). Hostile input only ever yields the adapters' typed errors."""

from __future__ import annotations

import base64
import contextlib
import json
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordertrail.adapters.payments import alipay, generic
from ordertrail.adapters.payments.errors import (
    InvalidPaymentNotification,
    PaymentAmountMismatch,
    PaymentMethodMismatch,
    PaymentSignatureInvalid,
    UnsupportedCurrency,
)
from ordertrail.adapters.payments.settlement import (
    NoticeAction,
    Outcome,
    PaymentNotice,
    settle,
)
from ordertrail.application.system import Ordertrail
from ordertrail.domain import Money, PaymentMethod
from ordertrail.domain.errors import DomainError, OrderNotFound, PaymentNotFound
from ordertrail.domain.orders import Order, OrderStatus
from tests.support.builders import cny, customer, heads, order_of, stocked_product

NOW = datetime(2026, 11, 11, 0, 5, tzinfo=UTC)
ALIPAY_PRIVATE, ALIPAY_PUBLIC = alipay.generate_key_pair()
OTHER_PRIVATE, OTHER_PUBLIC = alipay.generate_key_pair()
SECRET = "test-provider-secret"
ORDER = UUID("0f8e7d6c-5b4a-5392-8170-6f5e4d3c2b1a")
PAYMENT = UUID("7d9f4c8e-2b1a-5c3d-9e8f-0a1b2c3d4e5f")


def notification(**changes: object) -> dict[str, str]:
    fields: dict[str, object] = {
        "order_id": ORDER,
        "payment_id": PAYMENT,
        "trade_no": "2026111122001403000500012345",
        "total_fen": 13600,
        "notify_time": NOW,
    }
    fields.update(changes)
    return alipay.signed_notification(ALIPAY_PRIVATE, **fields)  # type: ignore[arg-type]


# --- Alipay: amounts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fen"),
    [("136.00", 13600), ("136", 13600), ("0.01", 1), ("0.1", 10), ("20", 2000), ("0", 0),
     ("99999999.99", 9_999_999_999), ("100000000.00", 10_000_000_000)],
)  # fmt: skip
def test_yuan_become_fen_exactly(text: str, fen: int) -> None:
    assert alipay.yuan_to_fen(text) == fen


@pytest.mark.parametrize(
    "text",
    ["", " 1.00", "1.00 ", "1.001", "1.000", "-1.00", "+1.00", "1e2", "01.00", "1.", ".5",
     "1,00", "\uff11.\uff10\uff10", "NaN", "inf", "100000000.01", "1 000.00", "0x10",
     "\u0661\u0662"],
)  # fmt: skip
def test_amounts_that_are_not_plain_yuan_are_refused(text: str) -> None:
    with pytest.raises(InvalidPaymentNotification):
        alipay.yuan_to_fen(text)


@given(st.integers(0, alipay.MAX_FEN))
def test_fen_survive_a_round_trip_through_yuan(fen: int) -> None:
    assert alipay.yuan_to_fen(alipay.fen_to_yuan(fen)) == fen


# --- Alipay: signatures ----------------------------------------------------------------------


def test_the_signing_string_is_the_documented_one() -> None:
    """The example of Alipay's 异步返回结果的验签 page: sign and sign_type out, sorted."""
    params = {
        "total_amount": "2.00", "buyer_id": "2088102116773037", "body": "大乐透2.1",
        "trade_no": "2016071921001003030200089909", "refund_fee": "0.00",
        "notify_time": "2016-07-19 14:10:49", "subject": "大乐透2.1", "sign_type": "RSA2",
        "charset": "utf-8", "notify_type": "trade_status_sync", "out_trade_no": "0719141034-6418",
        "gmt_close": "2016-07-19 14:10:46", "gmt_payment": "2016-07-19 14:10:47",
        "trade_status": "TRADE_SUCCESS", "version": "1.0", "sign": "kPbQIjX+xQc8F0/A6/A...",
        "gmt_create": "2016-07-19 14:10:44", "app_id": "2015102700040153",
        "seller_id": "2088102119685838", "notify_id": "4a91b7a78a503640467525113fb7d8bg8e",
        "passback_params": "",
    }  # fmt: skip
    assert alipay.signing_string(params, alipay.NOTIFICATION_UNSIGNED) == (
        "app_id=2015102700040153&body=大乐透2.1&buyer_id=2088102116773037&charset=utf-8"
        "&gmt_close=2016-07-19 14:10:46&gmt_create=2016-07-19 14:10:44"
        "&gmt_payment=2016-07-19 14:10:47&notify_id=4a91b7a78a503640467525113fb7d8bg8e"
        "&notify_time=2016-07-19 14:10:49&notify_type=trade_status_sync"
        "&out_trade_no=0719141034-6418&refund_fee=0.00&seller_id=2088102119685838"
        "&subject=大乐透2.1&total_amount=2.00&trade_no=2016071921001003030200089909"
        "&trade_status=TRADE_SUCCESS&version=1.0"
    )


def test_a_signed_notification_verifies_through_its_form_encoding() -> None:
    params = notification(extra={"subject": "茶 & 壶 = 好", "body": "a+b c%d"})
    received = alipay.parse_form(alipay.form_body(params))
    assert received == params
    alipay.verify(received, ALIPAY_PUBLIC)
    bare = "".join(line for line in ALIPAY_PUBLIC.splitlines() if "-----" not in line)
    alipay.verify(received, bare)  # the key as Alipay's console shows it


@pytest.mark.parametrize(
    "field", ["total_amount", "out_trade_no", "passback_params", "trade_status", "trade_no"]
)
def test_changing_any_signed_field_breaks_the_signature(field: str) -> None:
    params = notification()
    params[field] = params[field][:-1] + ("X" if params[field][-1] != "X" else "Y")
    with pytest.raises(PaymentSignatureInvalid):
        alipay.verify(params, ALIPAY_PUBLIC)


def test_an_added_field_breaks_the_signature_but_an_empty_one_does_not() -> None:
    params = notification()
    alipay.verify({**params, "fund_bill_list": ""}, ALIPAY_PUBLIC)
    with pytest.raises(PaymentSignatureInvalid):
        alipay.verify({**params, "fund_bill_list": "[]"}, ALIPAY_PUBLIC)


@pytest.mark.parametrize(
    "change",
    [
        {"sign": ""},
        {"sign": "not base64!"},
        {"sign": base64.b64encode(b"\x00" * 256).decode()},
        {"sign_type": "RSA"},
        {"sign_type": ""},
        {"sign": "A" * 5000},
    ],
)
def test_missing_or_malformed_signatures_are_refused(change: dict[str, str]) -> None:
    with pytest.raises(PaymentSignatureInvalid):
        alipay.verify({**notification(), **change}, ALIPAY_PUBLIC)


def test_a_notification_signed_by_another_key_is_refused() -> None:
    params = alipay.signed_notification(
        OTHER_PRIVATE, order_id=ORDER, payment_id=PAYMENT, trade_no="T1", total_fen=1,
        notify_time=NOW,
    )  # fmt: skip
    with pytest.raises(PaymentSignatureInvalid):
        alipay.verify(params, ALIPAY_PUBLIC)


@pytest.mark.parametrize("key", ["", "   ", "not a key", "-----BEGIN PUBLIC KEY-----\nAA\n"])
def test_without_a_usable_key_nothing_verifies(key: str) -> None:
    with pytest.raises(PaymentSignatureInvalid):
        alipay.verify(notification(), key)


# --- Alipay: reading a notification ----------------------------------------------------------


def test_a_paid_trade_is_a_capture_of_its_total_in_fen() -> None:
    read = alipay.parse_notification(notification())
    assert read.payment_id == PAYMENT
    assert read.order_id == ORDER
    notice = read.notice()
    assert notice == PaymentNotice(
        "alipay", NoticeAction.CAPTURE, ORDER, PAYMENT, cny(13600),
        "2026111122001403000500012345",
    )  # fmt: skip
    finished = alipay.parse_notification(notification(trade_status="TRADE_FINISHED")).notice()
    assert finished.action is NoticeAction.CAPTURE


def test_a_closed_trade_is_a_failure_and_a_waiting_one_is_nothing() -> None:
    closed = alipay.parse_notification(notification(trade_status="TRADE_CLOSED", total_fen=None))
    assert closed.notice().action is NoticeAction.FAIL
    assert closed.notice().amount is None
    assert "TRADE_CLOSED" in closed.notice().reason
    waiting = alipay.parse_notification(notification(trade_status="WAIT_BUYER_PAY"))
    assert waiting.notice().action is None


@pytest.mark.parametrize(
    "change",
    [
        {"trade_status": "TRADE_PENDING"},
        {"total_amount": "136.001"},
        {"total_amount": "0.00"},
        {"total_amount": ""},
        {"out_trade_no": "not-an-id"},
        {"out_trade_no": str(PAYMENT)[:-1]},
        {"passback_params": ""},
        {"passback_params": "ab=测试一下"},
        {"trade_no": ""},
        {"trade_no": "x" * 65},
        {"trade_no": "has space"},
        {"charset": "gbk"},
    ],
)
def test_notifications_we_cannot_read_are_refused(change: dict[str, str]) -> None:
    with pytest.raises(InvalidPaymentNotification):
        alipay.parse_notification({**notification(), **change})


def test_a_url_encoded_passback_is_read_too() -> None:
    params = {**notification(), "passback_params": str(ORDER).replace("-", "%2D")}
    assert alipay.parse_notification(params).order_id == ORDER


def test_notifications_of_another_app_are_refused_when_the_app_is_known() -> None:
    params = notification(app_id="2021000000000001")
    assert alipay.parse_notification(params, app_id="2021000000000001").app_id
    with pytest.raises(InvalidPaymentNotification):
        alipay.parse_notification(params, app_id="2021000000000002")


@pytest.mark.parametrize(
    "body",
    [b"", b"\xff\xfe", b"a=1&a=2", b"x=%ff", b"a=" + b"x" * (alipay.MAX_BODY_BYTES + 1),
     "&".join(f"k{i}=v" for i in range(alipay.MAX_FIELDS + 1)).encode()],
)  # fmt: skip
def test_bodies_that_are_not_one_utf8_form_are_refused(body: bytes) -> None:
    with pytest.raises(InvalidPaymentNotification):
        alipay.parse_form(body)


# --- Alipay: the page-pay request ------------------------------------------------------------


def test_the_page_pay_request_is_signed_by_the_merchant_and_names_the_payment() -> None:
    merchant_private, merchant_public = alipay.generate_key_pair()
    params = alipay.page_pay_request(
        merchant_private,
        app_id="2021000000000000",
        order_id=ORDER,
        payment_id=PAYMENT,
        amount=cny(13600),
        subject="ordertrail order",
        notify_url="https://shop.example/callbacks/payments/alipay",
        return_url="https://shop.example/orders/x",
        now=NOW,
        expires_at=datetime(2026, 11, 11, 0, 30, tzinfo=UTC),
    )
    alipay.verify(params, merchant_public, alipay.REQUEST_UNSIGNED)
    assert params["timestamp"] == "2026-11-11 08:05:00"  # China time
    biz = json.loads(params["biz_content"])
    assert biz["out_trade_no"] == str(PAYMENT)
    assert biz["passback_params"] == str(ORDER)
    assert biz["total_amount"] == "136.00"
    assert biz["time_expire"] == "2026-11-11 08:30:00"
    url = urlsplit(alipay.gateway_url(params))
    assert url.netloc.endswith("alipaydev.com")
    assert {k: v[0] for k, v in parse_qs(url.query).items()} == params
    with pytest.raises(PaymentSignatureInvalid):
        alipay.verify({**params, "return_url": "https://evil.example"}, merchant_public,
                      alipay.REQUEST_UNSIGNED)  # fmt: skip
    with pytest.raises(UnsupportedCurrency):
        alipay.page_pay_request(
            merchant_private, app_id="a", order_id=ORDER, payment_id=PAYMENT,
            amount=Money(100, "USD"), subject="s", notify_url="n", return_url="r", now=NOW,
            expires_at=NOW,
        )  # fmt: skip


# --- the generic provider --------------------------------------------------------------------


def generic_event(**changes: object) -> tuple[bytes, dict[str, str]]:
    fields: dict[str, object] = {
        "event_id": "evt_1",
        "type": generic.EventType.CAPTURED,
        "order_id": ORDER,
        "payment_id": PAYMENT,
        "amount": cny(13600),
        "reference": "ch_1",
    }
    fields.update(changes)
    return generic.signed_event(SECRET, **fields)  # type: ignore[arg-type]


def test_a_signed_event_verifies_and_reads() -> None:
    body, headers = generic_event()
    generic.verify(body, headers[generic.SIGNATURE_HEADER], SECRET)
    generic.verify(body, headers[generic.SIGNATURE_HEADER].upper().replace("SHA256=", "sha256="),
                   SECRET)  # fmt: skip
    event = generic.parse(body)
    assert event.notice() == PaymentNotice(
        "generic", NoticeAction.CAPTURE, ORDER, PAYMENT, cny(13600), "ch_1"
    )
    failed = generic.parse(generic_event(type=generic.EventType.FAILED)[0]).notice()
    assert failed.action is NoticeAction.FAIL
    assert failed.amount is None
    refund = generic.parse(generic_event(type=generic.EventType.REFUNDED)[0]).notice()
    assert refund.action is NoticeAction.REFUND


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=", "sha256=" + "0" * 64, "md5=abc", "0" * 64, "sha256=" + "0" * 500],
)
def test_bad_or_missing_hmacs_are_refused(signature: str | None) -> None:
    body, _ = generic_event()
    with pytest.raises(PaymentSignatureInvalid):
        generic.verify(body, signature, SECRET)


def test_a_body_changed_after_signing_or_another_secret_is_refused() -> None:
    body, headers = generic_event()
    with pytest.raises(PaymentSignatureInvalid):
        generic.verify(body.replace(b"13600", b"13601"), headers[generic.SIGNATURE_HEADER], SECRET)
    with pytest.raises(PaymentSignatureInvalid):
        generic.verify(body, headers[generic.SIGNATURE_HEADER], "another-secret")
    with pytest.raises(PaymentSignatureInvalid):
        generic.verify(body, headers[generic.SIGNATURE_HEADER], "")


def test_unknown_members_are_ignored() -> None:
    body = json.dumps(
        {**json.loads(generic_event()[0]), "livemode": False, "metadata": {"a": [1, 2]}}
    ).encode()
    assert generic.parse(body).reference == "ch_1"


@pytest.mark.parametrize(
    "change",
    [
        {"type": "payment.refunded"},
        {"order_id": "nope"},
        {"amount": {"amount": 0, "currency": "CNY"}},
        {"amount": {"amount": -5, "currency": "CNY"}},
        {"amount": {"amount": 1.5, "currency": "CNY"}},
        {"amount": {"amount": 10**16, "currency": "CNY"}},
        {"amount": {"amount": 100, "currency": "cny"}},
        {"amount": "100"},
        {"reference": ""},
        {"reference": "has space"},
        {"reference": "x" * 201},
        {"event_id": ""},
    ],
)
def test_events_we_cannot_read_are_refused(change: dict[str, object]) -> None:
    body = json.dumps({**json.loads(generic_event()[0]), **change}).encode()
    with pytest.raises(InvalidPaymentNotification):
        generic.parse(body)


def test_the_sandbox_checkout_request_is_signed_with_the_shared_secret() -> None:
    params = generic.checkout_request(
        SECRET, order_id=ORDER, payment_id=PAYMENT, amount=cny(500),
        notify_url="https://shop.example/cb", now=NOW, expires_at=NOW,
    )  # fmt: skip
    assert params["merchant_reference"] == str(PAYMENT)
    assert params["amount"] == "500"
    assert generic.checkout_url(params).startswith(generic.SANDBOX_CHECKOUT + "?")


# --- hostile input: only typed errors --------------------------------------------------------

TEXT = st.text(max_size=40) | st.sampled_from(
    ["", "RSA2", "TRADE_SUCCESS", "136.00", "1.001", str(ORDER), str(PAYMENT), "\x00\ud800", "%"]
)
PARAMS = st.dictionaries(
    st.sampled_from(
        ["sign", "sign_type", "trade_no", "out_trade_no", "passback_params", "trade_status",
         "total_amount", "charset", "app_id", "notify_id"]
    ) | st.text(max_size=10),
    TEXT,
    max_size=12,
)  # fmt: skip


@given(st.binary(max_size=400))
def test_random_bytes_are_read_or_refused_as_forms(body: bytes) -> None:
    with contextlib.suppress(InvalidPaymentNotification):
        alipay.parse_form(body)


@given(PARAMS)
def test_random_parameters_never_verify_nor_raise_anything_untyped(params: dict[str, str]) -> None:
    with pytest.raises(PaymentSignatureInvalid):
        alipay.verify(params, ALIPAY_PUBLIC)
    with contextlib.suppress(InvalidPaymentNotification):
        alipay.parse_notification(params)


@given(st.sampled_from(sorted(notification())), TEXT)
def test_any_change_to_a_genuine_notification_is_caught(field: str, value: str) -> None:
    genuine = notification()
    changed = {**genuine, field: value}
    try:
        alipay.verify(changed, ALIPAY_PUBLIC)
    except PaymentSignatureInvalid:
        return
    assert changed == genuine  # every field is covered (sign_type must stay RSA2)


@given(st.text(max_size=30))
def test_random_amount_text_is_read_or_refused(text: str) -> None:
    with contextlib.suppress(InvalidPaymentNotification):
        assert alipay.yuan_to_fen(text) >= 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=3),
    max_leaves=10,
)  # fmt: skip
EVENTS = st.fixed_dictionaries(
    {},
    optional={
        "event_id": TEXT,
        "type": st.sampled_from([t.value for t in generic.EventType]) | TEXT,
        "order_id": st.just(str(ORDER)) | TEXT,
        "payment_id": st.just(str(PAYMENT)) | TEXT,
        "amount": st.fixed_dictionaries(
            {"amount": st.integers(-5, 10**17) | JSON_VALUES, "currency": TEXT | st.just("CNY")}
        )
        | JSON_VALUES,
        "reference": TEXT,
    },
)


@given(st.binary(max_size=300) | EVENTS.map(lambda e: json.dumps(e).encode()), TEXT)
def test_random_webhooks_only_fail_with_typed_errors(body: bytes, signature: str) -> None:
    with pytest.raises(PaymentSignatureInvalid):
        generic.verify(body, signature, SECRET)
    try:
        event = generic.parse(body)
    except InvalidPaymentNotification:
        return
    assert event.amount.is_positive


@given(st.binary(max_size=64))
def test_deeply_nested_json_is_refused_not_crashed(prefix: bytes) -> None:
    for body in (b"[" * 100_000, b'{"a":' * 50_000, prefix + b"[" * 10_000):
        with pytest.raises(InvalidPaymentNotification):
            generic.parse(body)


# --- settlement: what a notice does to an order ----------------------------------------------


@pytest.fixture
def awaiting(ot: Ordertrail) -> Order:
    stocked_product(ot, "TEA-1", 6800, 10)
    placed = ot.ordering.place_order(order_of(("TEA-1", 2), total=13600), customer())
    return ot.orders.order(placed.value.order_id)


def payment_of(order: Order) -> UUID:
    return next(iter(order.payments))


def notice(order: Order, action: NoticeAction | None, amount: int | None = 13600,
           reference: str = "T-1", provider: str = "alipay") -> PaymentNotice:  # fmt: skip
    money = None if amount is None else cny(amount)
    return PaymentNotice(provider, action, order.id, payment_of(order), money, reference)


def events_of(ot: Ordertrail, order_id: UUID) -> list[object]:
    return list(ot.orders.repository.event_store.get(order_id))


def test_a_capture_settles_the_order_once(ot: Ordertrail, awaiting: Order) -> None:
    done = settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE), alipay.METHODS)
    assert done.outcome is Outcome.RECORDED
    assert done.positions["Orders"] > 0
    order = ot.orders.order(awaiting.id)
    assert order.status is OrderStatus.READY_TO_SHIP
    captured = [e for e in events_of(ot, order.id) if isinstance(e, Order.PaymentCaptured)]
    assert captured[0].meta.actor.kind.value == "provider"
    assert captured[0].meta.actor.id == "alipay"
    before = heads(ot)
    again = settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE), alipay.METHODS)
    assert again.outcome is Outcome.DUPLICATE
    assert heads(ot) == before


def test_late_authorizations_and_failures_are_ignored(ot: Ordertrail, awaiting: Order) -> None:
    settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE))
    before = heads(ot)
    for late in (notice(awaiting, NoticeAction.AUTHORIZE), notice(awaiting, NoticeAction.FAIL,
                                                                   None, "T-2")):  # fmt: skip
        assert settle(ot.orders, late).outcome is Outcome.IGNORED
    assert settle(ot.orders, notice(awaiting, None)).outcome is Outcome.IGNORED
    assert heads(ot) == before


def test_an_authorization_then_its_capture(ot: Ordertrail, awaiting: Order) -> None:
    assert settle(ot.orders, notice(awaiting, NoticeAction.AUTHORIZE)).outcome is Outcome.RECORDED
    assert settle(ot.orders, notice(awaiting, NoticeAction.AUTHORIZE)).outcome is Outcome.DUPLICATE
    assert settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE)).outcome is Outcome.RECORDED
    assert ot.orders.order(awaiting.id).is_paid


@pytest.mark.parametrize(("action", "amount"), [(NoticeAction.CAPTURE, 13599),
                         (NoticeAction.CAPTURE, 13601), (NoticeAction.AUTHORIZE, 100)])  # fmt: skip
def test_an_unexpected_amount_is_refused_and_recorded(
    ot: Ordertrail, awaiting: Order, action: NoticeAction, amount: int
) -> None:
    with pytest.raises(PaymentAmountMismatch) as raised:
        settle(ot.orders, notice(awaiting, action, amount))
    assert raised.value.details["expected"] == 13600
    order = ot.orders.order(awaiting.id)
    assert order.captured.is_zero
    assert order.status is OrderStatus.AWAITING_PAYMENT
    [noted] = [
        e for e in events_of(ot, order.id) if isinstance(e, Order.PaymentDiscrepancyRecorded)
    ]
    assert noted.reported == cny(amount)
    assert noted.expected == cny(13600)
    before = heads(ot)
    with pytest.raises(PaymentAmountMismatch):  # re-delivered: refused again, recorded once
        settle(ot.orders, notice(awaiting, action, amount))
    assert heads(ot) == before


def test_a_second_trade_for_a_paid_payment_is_a_discrepancy(
    ot: Ordertrail, awaiting: Order
) -> None:
    settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE))
    with pytest.raises(PaymentAmountMismatch):
        settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE, reference="T-2"))
    assert ot.orders.order(awaiting.id).captured == cny(13600)


def test_refunds_up_to_what_was_captured(ot: Ordertrail, awaiting: Order) -> None:
    settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE))
    with pytest.raises(PaymentAmountMismatch):
        settle(ot.orders, notice(awaiting, NoticeAction.REFUND, 13601, "R-1"))
    done = settle(ot.orders, notice(awaiting, NoticeAction.REFUND, 3600, "R-2"))
    assert done.outcome is Outcome.RECORDED
    again = settle(ot.orders, notice(awaiting, NoticeAction.REFUND, 3600, "R-2"))
    assert again.outcome is Outcome.DUPLICATE
    assert ot.orders.order(awaiting.id).refunded == cny(3600)


def test_unknown_payments_and_other_methods_are_refused(ot: Ordertrail, awaiting: Order) -> None:
    before = heads(ot)
    with pytest.raises(OrderNotFound):
        settle(ot.orders, PaymentNotice("alipay", NoticeAction.CAPTURE, uuid4(), PAYMENT,
                                        cny(1), "T"))  # fmt: skip
    with pytest.raises(PaymentNotFound):
        settle(ot.orders, PaymentNotice("alipay", NoticeAction.CAPTURE, awaiting.id, uuid4(),
                                        cny(1), "T"))  # fmt: skip
    with pytest.raises(PaymentMethodMismatch):
        settle(ot.orders, notice(awaiting, NoticeAction.CAPTURE),
               frozenset({PaymentMethod.CARD}))  # fmt: skip
    assert heads(ot) == before


def test_every_refusal_is_a_domain_error() -> None:
    for error in (InvalidPaymentNotification, PaymentSignatureInvalid, PaymentAmountMismatch,
                  PaymentMethodMismatch, UnsupportedCurrency):  # fmt: skip
        assert issubclass(error, DomainError)
    assert PaymentSignatureInvalid.code == "payment.bad_signature"
    assert PaymentAmountMismatch.code == "payment.amount_mismatch"
