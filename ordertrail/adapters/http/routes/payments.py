"""Paying an order: sending the shopper to a payment provider, the providers' callbacks,
and confirming a cash-on-delivery order.

Callbacks are public: they carry no bearer token and are authenticated only by their
signature, which is verified before anything is read or written (a bad or missing one is
a 401 ``payment.bad_signature`` problem). What a verified callback reports is recorded on
the order as the provider (``Actor.of("provider", "alipay")``) by
``adapters.payments.settlement``: re-delivered and out-of-order notices are acknowledged
without writing anything, and an amount the payment does not expect is refused and
recorded on the order (``PaymentDiscrepancyRecorded``).

* ``POST /callbacks/payments/alipay`` answers Alipay in its own way: ``text/plain``
  ``success`` when the notification is handled (recorded, a duplicate, or nothing to
  record), ``fail`` otherwise (Alipay then re-delivers it), with the status saying why
  (400 unreadable, 404 unknown order or payment, 409 amount or method mismatch, 503 store
  unavailable).
* ``POST /callbacks/payments/generic`` answers ``{"received": true, "outcome": …}``, or a
  problem: 409 ``payment.amount_mismatch``, 422 ``payment.invalid_notification``, 404.

The storefront's checkout (``POST /orders/{id}/payments/{id}/checkout``) is a sandbox:
it returns the signed request parameters and the URL to send the shopper to, and sends
nothing anywhere. Alipay payments go to Alipay; cards and WeChat Pay to the generic
provider.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from anyio import to_thread
from litestar import MediaType, Request, Response, post
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Example,
    OpenAPIFormat,
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    RequestBody,
    Schema,
)
from litestar.params import FromPath

from ordertrail.adapters.http.auth import Role, principal_of, requires, staff_only
from ordertrail.adapters.http.problems import status_for
from ordertrail.adapters.http.routes.common import (
    POSITION_HEADER,
    accepted,
    context,
    encode_positions,
    not_found,
    runtime_of,
    visible_to,
)
from ordertrail.adapters.http.routes.orders import OrderReply
from ordertrail.adapters.http.schemas import MoneyReply, Reply
from ordertrail.adapters.payments import alipay, generic
from ordertrail.adapters.payments.errors import InvalidPaymentNotification
from ordertrail.adapters.payments.settlement import AUTHORIZABLE, settle
from ordertrail.application.orders import ConfirmCashOnDelivery
from ordertrail.domain.errors import (
    DomainError,
    InvalidPaymentTransition,
    OrderNotFound,
    OrderNotPayable,
    PaymentNotFound,
)
from ordertrail.domain.orders import Order, OrderStatus
from ordertrail.domain.payments import PaymentMethod

log = logging.getLogger(__name__)

ALIPAY_CALLBACK = "/callbacks/payments/alipay"
GENERIC_CALLBACK = "/callbacks/payments/generic"
#: Online methods without an adapter of their own go through the generic provider.
GENERIC_METHODS = frozenset({PaymentMethod.CARD, PaymentMethod.WECHAT_PAY})
SANDBOX_APP_ID = "sandbox"

customers_only = requires(Role.CUSTOMER)


class CheckoutReply(Reply):
    """What the storefront needs to send the shopper to the provider."""

    provider: str
    method: PaymentMethod
    order_id: UUID
    payment_id: UUID
    out_trade_no: str
    amount_due: MoneyReply
    redirect_url: str
    parameters: dict[str, str]
    expires_at: datetime
    sandbox: bool = True


class CallbackReply(Reply):
    received: bool
    outcome: str
    event_id: str


# --- OpenAPI: the callbacks read their raw body, so their bodies are documented here --------

_ALIPAY_EXAMPLE = (
    "notify_time=2026-11-11+08%3A05%3A00&notify_type=trade_status_sync"
    "&notify_id=ac05099524730693a8b330c5ecf72da9786&app_id=2021000000000000&charset=utf-8"
    "&version=1.0&sign_type=RSA2&sign=kPbQIjX%2BxQc8F0%2FA6%2FAocELIjhhZnGbcBN6G4MM%2F..."
    "&trade_no=2026111122001403000500012345"
    "&out_trade_no=7d9f4c8e-2b1a-5c3d-9e8f-0a1b2c3d4e5f"
    "&passback_params=0f8e7d6c-5b4a-5392-8170-6f5e4d3c2b1a"
    "&trade_status=TRADE_SUCCESS&total_amount=136.00&receipt_amount=136.00"
    "&gmt_payment=2026-11-11+08%3A04%3A58"
)
_GENERIC_EXAMPLE = {
    "event_id": "evt_01J9Z8Q4W5",
    "type": "payment.captured",
    "order_id": "0f8e7d6c-5b4a-5392-8170-6f5e4d3c2b1a",
    "payment_id": "7d9f4c8e-2b1a-5c3d-9e8f-0a1b2c3d4e5f",
    "amount": {"amount": 13600, "currency": "CNY"},
    "reference": "ch_3Q8Z1N2eZvKYlo2C",
}


def _text(description: str, **more: Any) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description, **more)


@dataclass
class AlipayNotificationOperation(Operation):
    def __post_init__(self) -> None:
        fields = {
            "sign": _text("base64 RSA-SHA256 signature by Alipay's key"),
            "sign_type": _text("always RSA2", enum=["RSA2"]),
            "out_trade_no": _text("the payment id"),
            "passback_params": _text("the order id"),
            "trade_no": _text("Alipay's trade number: the provider reference"),
            "trade_status": _text(
                "trade status",
                enum=list(alipay.ACTIONS),
            ),
            "total_amount": _text("yuan, two decimals at most", examples=["136.00"]),
        }
        self.request_body = RequestBody(
            required=True,
            description="An Alipay asynchronous notification (all its parameters are signed).",
            content={
                "application/x-www-form-urlencoded": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties=dict(fields),
                        required=["sign", "sign_type", "out_trade_no", "trade_status"],
                    ),
                    examples={
                        "paid": Example(summary="a paid trade", value=_ALIPAY_EXAMPLE),
                    },
                )
            },
        )


@dataclass
class GenericNotificationOperation(Operation):
    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="One provider event, signed: X-Ordertrail-Signature: sha256=<hex> "
            "(HMAC-SHA256 of the raw body).",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        properties={
                            "event_id": _text("the delivery's id"),
                            "type": _text(
                                "what happened", enum=[t.value for t in generic.EventType]
                            ),
                            "order_id": _text("the order id", format=OpenAPIFormat.UUID),
                            "payment_id": _text("the payment id", format=OpenAPIFormat.UUID),
                            "amount": Schema(
                                type=OpenAPIType.OBJECT,
                                properties={
                                    "amount": Schema(type=OpenAPIType.INTEGER, minimum=1),
                                    "currency": _text("ISO 4217", pattern="^[A-Z]{3}$"),
                                },
                                required=["amount", "currency"],
                            ),
                            "reference": _text("the provider's transaction (or refund) id"),
                        },
                        required=[
                            "event_id",
                            "type",
                            "order_id",
                            "payment_id",
                            "amount",
                            "reference",
                        ],
                    ),
                    examples={"captured": Example(summary="a capture", value=_GENERIC_EXAMPLE)},
                )
            },
        )


# --- the storefront ------------------------------------------------------------------------


def _owned_order(state: State, request: Request[Any, Any, Any], order_id: UUID) -> Order:
    """The order if the caller may see it; an unknown and another customer's order answer
    the same 404."""
    try:
        order = runtime_of(state).ot.orders.order(order_id)
    except OrderNotFound:
        raise not_found("order") from None
    visible_to(principal_of(request), order.customer_id, "order")
    return order


@post(
    "/orders/{order_id:uuid}/payments/{payment_id:uuid}/checkout",
    summary="Start paying one payment of an order at its provider (sandbox)",
    description="Returns the provider, the out-trade number (the payment id), the amount "
    "due, and the signed request parameters with the URL to send the shopper to. Nothing "
    "is sent to the provider and nothing is recorded: the provider's callback records the "
    "payment.",
    guards=[customers_only],
    sync_to_thread=True,
    tags=["payments"],
    status_code=200,
)
def checkout_payment(
    state: State,
    request: Request[Any, Any, Any],
    order_id: FromPath[UUID],
    payment_id: FromPath[UUID],
) -> CheckoutReply:
    runtime = runtime_of(state)
    order = _owned_order(state, request, order_id)
    payment = order.payments.get(payment_id)
    if payment is None:
        raise PaymentNotFound(f"order has no payment {payment_id}", payment_id=str(payment_id))
    if order.status is not OrderStatus.AWAITING_PAYMENT:
        raise OrderNotPayable(
            f"a {order.status.value} order takes no payment", status=order.status.value
        )
    if not payment.method.is_online:
        raise InvalidPaymentTransition(
            "cash on delivery is paid to the courier", payment_id=str(payment_id)
        )
    if payment.state not in AUTHORIZABLE:
        raise InvalidPaymentTransition(
            f"a {payment.state.value} payment cannot be paid again",
            payment_id=str(payment_id),
            state=payment.state.value,
        )
    due = payment.uncaptured
    base = runtime.settings.public_base_url or str(request.base_url).rstrip("/")
    now = runtime.ot.clock()
    if payment.method is PaymentMethod.ALIPAY:
        provider = alipay.PROVIDER
        parameters = alipay.page_pay_request(
            alipay.sandbox_merchant_key(),
            app_id=SANDBOX_APP_ID,
            order_id=order.id,
            payment_id=payment_id,
            amount=due,
            subject=f"ordertrail order {order.id}",
            notify_url=base + ALIPAY_CALLBACK,
            return_url=f"{base}/orders/{order.id}",
            now=now,
            expires_at=order.payment_due_at,
        )
        url = alipay.gateway_url(parameters)
    else:
        provider = generic.PROVIDER
        parameters = generic.checkout_request(
            runtime.settings.generic_provider_secret,
            order_id=order.id,
            payment_id=payment_id,
            amount=due,
            notify_url=base + GENERIC_CALLBACK,
            now=now,
            expires_at=order.payment_due_at,
        )
        url = generic.checkout_url(parameters)
    return CheckoutReply(
        provider=provider,
        method=payment.method,
        order_id=order.id,
        payment_id=payment_id,
        out_trade_no=str(payment_id),
        amount_due=MoneyReply.of(due),
        redirect_url=url,
        parameters=parameters,
        expires_at=order.payment_due_at,
    )


@post(
    "/orders/{order_id:uuid}/cod-confirmation",
    summary="Confirm a cash-on-delivery order (If-Match)",
    description="The merchant confirms an order paid (in part) on delivery, once its online "
    "part is captured; with auto-release on, it goes straight to fulfilment.",
    guards=[staff_only],
    sync_to_thread=True,
    tags=["payments"],
    status_code=200,
)
def confirm_cash_on_delivery(
    state: State, request: Request[Any, Any, Any], order_id: FromPath[UUID]
) -> Response[OrderReply]:
    runtime = runtime_of(state)
    result = runtime.ot.orders.confirm_cash_on_delivery(
        ConfirmCashOnDelivery(order_id), context(request, versioned=True)
    )
    order = runtime.ot.orders.order(order_id)
    return accepted(result, OrderReply.of(order), version=order.version)


# --- provider callbacks ----------------------------------------------------------------------


def _alipay_answer(handled: bool, status: int = 200) -> Response[str]:
    return Response("success" if handled else "fail", status_code=status, media_type=MediaType.TEXT)


@post(
    ALIPAY_CALLBACK,
    summary="Alipay's asynchronous notification (signed: RSA2)",
    description="Public: authenticated by Alipay's signature only. Answers text/plain "
    "`success` once handled (duplicates included), `fail` otherwise.",
    opt={"public": True},
    tags=["payments"],
    status_code=200,
    media_type=MediaType.TEXT,
    operation_class=AlipayNotificationOperation,
    responses={
        status: ResponseSpec(
            data_container=str,
            media_type=MediaType.TEXT,
            description="`fail`: not handled (Alipay retries it later)",
            generate_examples=False,
        )
        for status in (400, 404, 409, 422)
    },
)
async def alipay_notification(state: State, request: Request[Any, Any, Any]) -> Response[str]:
    runtime = runtime_of(state)
    try:
        params = alipay.parse_form(await request.body())
    except InvalidPaymentNotification as error:
        log.warning("unreadable Alipay notification: %s", error.message)
        return _alipay_answer(False, 400)
    alipay.verify(params, runtime.settings.alipay_public_key_pem)  # before anything else
    try:
        notice = alipay.parse_notification(params).notice()
        await to_thread.run_sync(settle, runtime.ot.orders, notice, alipay.METHODS)
    except DomainError as error:
        log.warning("Alipay notification refused (%s): %s", error.code, error.message)
        unreadable = isinstance(error, InvalidPaymentNotification)
        return _alipay_answer(False, 400 if unreadable else status_for(error))
    return _alipay_answer(True)


@post(
    GENERIC_CALLBACK,
    summary="A payment provider's event (signed: HMAC-SHA256)",
    description="Public: authenticated by the X-Ordertrail-Signature header only.",
    opt={"public": True},
    tags=["payments"],
    status_code=200,
    operation_class=GenericNotificationOperation,
)
async def generic_notification(
    state: State, request: Request[Any, Any, Any]
) -> Response[CallbackReply]:
    runtime = runtime_of(state)
    body = await request.body()
    generic.verify(
        body,
        request.headers.get(generic.SIGNATURE_HEADER),
        runtime.settings.generic_provider_secret,
    )  # before anything else
    event = generic.parse(body)
    settled = await to_thread.run_sync(settle, runtime.ot.orders, event.notice(), GENERIC_METHODS)
    headers = {POSITION_HEADER: encode_positions(settled.positions)} if settled.positions else {}
    return Response(
        CallbackReply(received=True, outcome=settled.outcome.value, event_id=event.event_id),
        headers=headers,
    )


ROUTES: list[Any] = [
    checkout_payment,
    confirm_cash_on_delivery,
    alipay_notification,
    generic_notification,
]
